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
                review: 2.0
            }
            .is_valid()
        );
    }
}
