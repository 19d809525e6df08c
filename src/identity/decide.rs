//! The decision rule: two thresholds on the total match weight.
//!
//! The total weight is a log2 likelihood ratio, so a threshold is a statement about odds:
//! with `link = 16` an automatic link needs the evidence to be 2¹⁶ ≈ 65 000 times likelier
//! under "same person" than under "different people". Pairs between `review` and `link`
//! are too close to call automatically and go to a person; below `review` the incoming
//! record becomes a new person.

use serde::{Deserialize, Serialize};

/// Decision thresholds on the total score (bits).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Score at or above which a record is linked automatically.
    pub link: f64,
    /// Score at or above which (and below `link`) a human should review the pair.
    pub review: f64,
    /// The number of stored persons `link` and `review` hold for. A record compared with a
    /// larger store meets more strangers who resemble it by chance — the prior odds that a
    /// look-alike is the same person fall as the store grows — so with `n` persons stored
    /// both thresholds rise by log2(n / calibrated_for) bits (the hub counts at start).
    /// 0: fixed thresholds.
    pub calibrated_for: u64,
}

impl Default for Thresholds {
    /// Chosen on FEBRL 1 and 2 only (see docs/identity.md): `link` is the middle of the threshold
    /// interval with the smallest worst-case F1 loss over the incremental ingest of both
    /// files, with the default and the EM-fitted model, with and without the identifier
    /// field; `review` sits 6 bits (64 times weaker odds) lower.
    fn default() -> Self {
        Self {
            link: 15.75,
            review: 9.75,
            // FEBRL 1 and 2 hold 1,000 and 5,000 records.
            calibrated_for: 5_000,
        }
    }
}

/// What to do with an incoming record given its best candidate's score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Same person: attach the record to the candidate's person.
    Link,
    /// Possibly the same person: ask a human.
    Review,
    /// A new person.
    New,
}

impl Thresholds {
    /// Applies the thresholds. A NaN score (which the model never produces) is `New`.
    pub fn decide(&self, score: f64) -> Decision {
        if score >= self.link {
            Decision::Link
        } else if score >= self.review {
            Decision::Review
        } else {
            Decision::New
        }
    }

    /// The thresholds for a store of `persons` (see `calibrated_for`): never lower than
    /// configured.
    pub fn scaled(&self, persons: u64) -> Thresholds {
        let shift = if self.calibrated_for == 0 || persons <= self.calibrated_for {
            0.0
        } else {
            (persons as f64 / self.calibrated_for as f64).log2()
        };
        Thresholds {
            link: self.link + shift,
            review: self.review + shift,
            ..*self
        }
    }

    /// `review ≤ link` and both finite.
    pub fn is_valid(&self) -> bool {
        self.link.is_finite() && self.review.is_finite() && self.review <= self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        let t = Thresholds {
            link: 10.0,
            review: 4.0,
            calibrated_for: 0,
        };
        assert_eq!(t.decide(10.0), Decision::Link);
        assert_eq!(t.decide(9.99), Decision::Review);
        assert_eq!(t.decide(4.0), Decision::Review);
        assert_eq!(t.decide(3.9), Decision::New);
        assert_eq!(t.decide(f64::NAN), Decision::New);
        assert!(t.is_valid());
        assert!(
            !Thresholds {
                link: 1.0,
                review: 2.0,
                calibrated_for: 0,
            }
            .is_valid()
        );
    }

    #[test]
    fn thresholds_rise_with_the_store() {
        let t = Thresholds::default();
        assert_eq!(t.scaled(0), t);
        assert_eq!(t.scaled(5_000), t);
        // 200 times the calibration size: 200 times lower prior odds, log2(200) ≈ 7.64 bits.
        let big = t.scaled(1_000_000);
        assert!((big.link - (15.75 + 200f64.log2())).abs() < 1e-9, "{big:?}");
        assert!((big.review - (9.75 + 200f64.log2())).abs() < 1e-9, "{big:?}");
        let fixed = Thresholds {
            calibrated_for: 0,
            ..t
        };
        assert_eq!(fixed.scaled(1_000_000), fixed);
    }
}
