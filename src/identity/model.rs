//! The Fellegi–Sunter model: m/u probabilities per field level, their log2 weights, the
//! total score, and its explanation.
//!
//! For each field level, `m = P(level | same person)` and `u = P(level | different
//! people)`. Assuming fields independent given the match status, `log2(m/u)` summed over the
//! fields is the log-likelihood ratio of "same person" — a score whose thresholds read as
//! odds and whose parts explain themselves ("birth date exact: +12.1"). A missing field
//! contributes 0: it is evidence neither way.
//!
//! Two corrections keep the independence assumption from doing harm in a clinic:
//!
//! * **link veto** (on by default) — an outright disagreement on the given name, the
//!   birth date or an identifier of a shared system caps the decision at review unless an
//!   identifier agrees exactly: a mother and her child, or twins, share family name, address
//!   and phone, and plain summation scores them as one person (38 and 56 bits in the unit
//!   tests' example);
//! * **correlated groups** (opt-in) — street, city, postcode and state describe one fact
//!   (where the person lives), as do phone and email: a group can be made to count only its
//!   strongest member, so a shared address is not counted four times, nor a move penalised
//!   four times.
//!
//! The default probabilities are generic hand-set values (typical magnitudes for a city's
//! patient population), checked on the FEBRL 1/2 benchmark; a deployment should
//! re-estimate them on its own store with [`super::em::train`] and may override any of them
//! in YAML.

use serde::{Deserialize, Serialize};

use super::compare::{
    Comparison, Field, MAX_LEVELS, MISSING, N_FIELDS, compare_date, compare_emails, compare_ids,
    compare_name_opt, compare_phones, compare_postcode, compare_sex, compare_state, compare_text, opt,
};
use super::decide::{Decision, Thresholds};
use super::prepare::{NameValue, Prepared};
use super::tf::TermFrequencies;

pub use super::config::{ConfigError, LevelProbs, ModelConfig, TfConfig};

/// One field's part in a score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldScore {
    pub field: Field,
    /// The level reached, `None` when the field is missing on either side.
    pub level: Option<String>,
    /// The weight counted, term-frequency adjustment included (0 when missing).
    pub weight: f64,
    /// The part of `weight` due to the term-frequency adjustment.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tf_adjustment: f64,
    /// Whether `weight` is part of the total: in a correlated group only the member with the
    /// largest weight counts.
    pub counted: bool,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Why a pair scored what it did: per-field levels and weights, and the total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBreakdown {
    /// Sum of the field weights minus the swap penalty.
    pub total: f64,
    /// The thresholds' verdict on `total`.
    pub decision: Decision,
    /// Names were compared crosswise (given ↔ family).
    pub names_swapped: bool,
    /// Bits subtracted for the swap (0 when not swapped).
    pub swap_penalty: f64,
    /// The field whose disagreement capped the decision at review, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vetoed_by: Option<Field>,
    /// One entry per field, in [`Field::ALL`] order.
    pub fields: Vec<FieldScore>,
}

/// A candidate's score against an incoming record ([`Model::score_candidate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f64,
    /// The veto field that bars the link, if any.
    pub veto: Option<Field>,
}

/// What [`Model::match_candidates`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchOutcome<K> {
    /// Link, review or new.
    pub decision: Decision,
    /// The candidate the decision is about (the one to link to, or to review) and its
    /// score; the best-scoring one when the decision is `New`; `None` without candidates.
    pub best: Option<(K, f64)>,
    /// The veto field that kept `best` from being linked, if any.
    pub vetoed_by: Option<Field>,
}

/// A ready-to-score model: the configuration with its weights precomputed, and an optional
/// term-frequency table.
#[derive(Clone, Debug)]
pub struct Model {
    config: ModelConfig,
    weights: [[f64; MAX_LEVELS]; N_FIELDS],
    /// Correlated group of each field (index into `config.correlated_groups`).
    group_of: [Option<usize>; N_FIELDS],
    tf: Option<TermFrequencies>,
}

impl Model {
    /// Validates the configuration and precomputes the weights.
    pub fn new(config: ModelConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut weights = [[0.0; MAX_LEVELS]; N_FIELDS];
        for field in Field::ALL {
            let p = config.probs(field);
            for (l, w) in weights[field.index()]
                .iter_mut()
                .enumerate()
                .take(field.levels().len())
            {
                *w = (p.m[l] / p.u[l]).log2();
            }
        }
        // Compact group numbers (empty groups skipped): at most one per field, since
        // `validate` refused a field in two groups.
        let mut group_of = [None; N_FIELDS];
        for (g, members) in config
            .correlated_groups
            .iter()
            .filter(|m| !m.is_empty())
            .enumerate()
        {
            for f in members {
                group_of[f.index()] = Some(g);
            }
        }
        Ok(Self {
            config,
            weights,
            group_of,
            tf: None,
        })
    }

    /// Attaches a term-frequency table built from the store.
    pub fn with_term_frequencies(mut self, tf: TermFrequencies) -> Self {
        self.tf = Some(tf);
        self
    }

    /// The attached term-frequency table, to update it as records are stored.
    pub fn term_frequencies_mut(&mut self) -> Option<&mut TermFrequencies> {
        self.tf.as_mut()
    }

    /// The attached term-frequency table.
    pub fn term_frequencies(&self) -> Option<&TermFrequencies> {
        self.tf.as_ref()
    }

    /// Replaces the decision thresholds (the weights do not depend on them).
    pub fn set_thresholds(&mut self, thresholds: Thresholds) -> Result<(), ConfigError> {
        if !thresholds.is_valid() {
            return Err(ConfigError::Thresholds);
        }
        self.config.thresholds = thresholds;
        Ok(())
    }

    /// Replaces (or removes) the term-frequency table.
    pub fn set_term_frequencies(&mut self, tf: Option<TermFrequencies>) {
        self.tf = tf;
    }

    /// The configuration in force.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The decision thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.config.thresholds
    }

    /// The weight `log2(m/u)` of a field level; 0 for a missing field.
    pub fn weight(&self, field: Field, level: Option<u8>) -> f64 {
        match level {
            Some(l) if usize::from(l) < field.levels().len() => self.weights[field.index()][usize::from(l)],
            _ => 0.0,
        }
    }

    /// Compares two records field by field (the comparison vector γ).
    ///
    /// Names are compared straight (given ↔ given, family ↔ family) and crosswise (given ↔
    /// family); the crosswise reading is taken when its weight, less the swap penalty, is
    /// higher. A whole name split differently between the fields (`Nguyen Van An` in family
    /// only, against `Nguyen` + `Van An`) is recognised by comparing the concatenations.
    pub fn compare(&self, a: &Prepared, b: &Prepared) -> Comparison {
        let mut levels = [MISSING; N_FIELDS];
        let (given, family, swapped) = self.compare_names(a, b);
        levels[Field::Given.index()] = opt(given);
        levels[Field::Family.index()] = opt(family);
        if let (Some(x), Some(y)) = (&a.dob, &b.dob) {
            levels[Field::BirthDate.index()] = compare_date(x, y);
        }
        if let (Some(x), Some(y)) = (a.sex, b.sex) {
            levels[Field::Sex.index()] = compare_sex(x, y);
        }
        levels[Field::Phone.index()] = opt(compare_phones(&a.phones, &b.phones));
        levels[Field::Email.index()] = opt(compare_emails(&a.emails, &b.emails));
        if let (Some(x), Some(y)) = (&a.postcode, &b.postcode) {
            levels[Field::Postcode.index()] = compare_postcode(x, y);
        }
        if let (Some(x), Some(y)) = (&a.street, &b.street) {
            levels[Field::Street.index()] = compare_text(x, y);
        }
        if let (Some(x), Some(y)) = (&a.city, &b.city) {
            levels[Field::City.index()] = compare_text(x, y);
        }
        if let (Some(x), Some(y)) = (&a.state, &b.state) {
            levels[Field::State.index()] = compare_state(x, y);
        }
        levels[Field::Identifier.index()] = opt(compare_ids(&a.ids, &b.ids));
        Comparison {
            levels,
            names_swapped: swapped,
        }
    }

    /// Returns (given level, family level, swapped).
    fn compare_names(&self, a: &Prepared, b: &Prepared) -> (Option<u8>, Option<u8>, bool) {
        let both = |x: &Option<NameValue>, y: &Option<NameValue>| x.is_some() && y.is_some();
        // Same letters split differently between the two fields.
        let split_differs = a.given.as_ref().map(|n| &n.key) != b.given.as_ref().map(|n| &n.key);
        if split_differs && a.family.is_some() && b.family.is_some() {
            let given_level = |swapped: bool| {
                let pair = if swapped {
                    both(&a.given, &b.family)
                } else {
                    both(&a.given, &b.given)
                };
                pair.then_some(0)
            };
            if a.full_fg == b.full_fg {
                return (given_level(false), Some(0), false);
            }
            if a.full_fg == b.full_gf {
                return (given_level(true), Some(0), true);
            }
        }
        let g = compare_name_opt(a.given.as_ref(), b.given.as_ref());
        let f = compare_name_opt(a.family.as_ref(), b.family.as_ref());
        if g == Some(0) && f == Some(0) {
            return (g, f, false);
        }
        let straight = self.weight(Field::Given, g) + self.weight(Field::Family, f);
        // The crosswise reading cannot win if even two exact agreements would not beat the
        // straight one: skip its two string comparisons (the hot path's costliest part).
        let best_crosswise = self.weight(Field::Given, Some(0)) + self.weight(Field::Family, Some(0))
            - self.config.swap_penalty;
        if straight >= best_crosswise {
            return (g, f, false);
        }
        let sg = compare_name_opt(a.given.as_ref(), b.family.as_ref());
        let sf = compare_name_opt(a.family.as_ref(), b.given.as_ref());
        let crosswise =
            self.weight(Field::Given, sg) + self.weight(Field::Family, sf) - self.config.swap_penalty;
        if (sg.is_some() || sf.is_some()) && crosswise > straight {
            (sg, sf, true)
        } else {
            (g, f, false)
        }
    }

    /// Term-frequency adjustment (bits) for an exact name agreement on `value`.
    fn tf_adjustment(&self, field: Field, value: Option<&NameValue>) -> f64 {
        let cfg = &self.config.term_frequency;
        let (Some(tf), Some(value)) = (&self.tf, value) else {
            return 0.0;
        };
        if !cfg.enabled || tf.total(field) < cfg.min_total {
            return 0.0;
        }
        let Some(freq) = tf.frequency(field, &value.key) else {
            return 0.0;
        };
        // Replace the average u of "exact" by this value's own frequency.
        let u_exact = self.config.probs(field).u[0];
        cfg.weight * (u_exact / freq.max(cfg.min_frequency)).log2()
    }

    /// The two TF adjustments (given, family) of a comparison.
    fn tf_adjustments(&self, a: &Prepared, c: &Comparison) -> (f64, f64) {
        if self.tf.is_none() {
            return (0.0, 0.0);
        }
        // The value that agreed is `a`'s value in the position it was compared from.
        let (given_value, family_value) = (a.given.as_ref(), a.family.as_ref());
        let adj = |field: Field, v: Option<&NameValue>| {
            if c.level(field) == Some(0) {
                self.tf_adjustment(field, v)
            } else {
                0.0
            }
        };
        (adj(Field::Given, given_value), adj(Field::Family, family_value))
    }

    /// Per-field weights (TF included; 0 when missing) and which of them count: a field
    /// counts unless a member of its correlated group has a larger weight.
    fn field_weights(&self, a: &Prepared, c: &Comparison) -> ([f64; N_FIELDS], [bool; N_FIELDS], (f64, f64)) {
        let mut w = [0.0; N_FIELDS];
        for f in Field::ALL {
            w[f.index()] = self.weight(f, c.level(f));
        }
        let tf = self.tf_adjustments(a, c);
        w[Field::Given.index()] += tf.0;
        w[Field::Family.index()] += tf.1;
        let mut counted = [false; N_FIELDS];
        let mut group_best: [Option<usize>; N_FIELDS] = [None; N_FIELDS];
        for f in Field::ALL {
            let i = f.index();
            if c.levels[i] == MISSING {
                continue;
            }
            match self.group_of[i] {
                None => counted[i] = true,
                Some(g) => {
                    if group_best[g].is_none_or(|b| w[i] > w[b]) {
                        group_best[g] = Some(i);
                    }
                }
            }
        }
        for i in group_best.into_iter().flatten() {
            counted[i] = true;
        }
        (w, counted, tf)
    }

    /// Total weight of a comparison of `a` (whose name values are used for the
    /// term-frequency adjustment) with another record.
    pub fn score_comparison(&self, a: &Prepared, c: &Comparison) -> f64 {
        let (w, counted, _) = self.field_weights(a, c);
        let mut total: f64 = w.iter().zip(counted).filter(|(_, c)| *c).map(|(w, _)| w).sum();
        if c.names_swapped {
            total -= self.config.swap_penalty;
        }
        total
    }

    /// The match score of two records: the sum of field weights (log2 likelihood ratio),
    /// term-frequency adjusted, correlated groups counting their strongest member only, less
    /// the swap penalty when names agreed crosswise.
    pub fn score(&self, a: &Prepared, b: &Prepared) -> f64 {
        self.score_comparison(a, &self.compare(a, b))
    }

    /// The veto field that disagrees outright, if any (see [`ModelConfig::link_veto`]).
    pub fn vetoed_by(&self, c: &Comparison) -> Option<Field> {
        if c.level(Field::Identifier) == Some(0) {
            return None;
        }
        self.config.link_veto.iter().copied().find(|f| match f {
            // Two different values in one identifier system are two registrations, however
            // close: sequential MRNs differ by one digit. Only a human merges them.
            Field::Identifier => c.level(*f).is_some_and(|l| l > 0),
            _ => c.level(*f) == Some(f.disagree()),
        })
    }

    /// The decision for a compared pair: the thresholds, with a link capped at review when a
    /// veto field disagrees.
    pub fn decide_comparison(&self, c: &Comparison, score: f64) -> Decision {
        match self.config.thresholds.decide(score) {
            Decision::Link if self.vetoed_by(c).is_some() => Decision::Review,
            d => d,
        }
    }

    /// The score with its per-field explanation.
    pub fn explain(&self, a: &Prepared, b: &Prepared) -> ScoreBreakdown {
        let c = self.compare(a, b);
        let (w, counted, (tf_given, tf_family)) = self.field_weights(a, &c);
        let fields = Field::ALL
            .iter()
            .map(|&field| {
                let level = c.level(field);
                let tf_adjustment = match field {
                    Field::Given => tf_given,
                    Field::Family => tf_family,
                    _ => 0.0,
                };
                FieldScore {
                    field,
                    level: level
                        .and_then(|l| field.levels().get(usize::from(l)))
                        .map(|s| (*s).to_string()),
                    weight: w[field.index()],
                    tf_adjustment,
                    counted: counted[field.index()],
                }
            })
            .collect();
        let total = self.score_comparison(a, &c);
        ScoreBreakdown {
            total,
            decision: self.decide_comparison(&c, total),
            names_swapped: c.names_swapped,
            swap_penalty: if c.names_swapped {
                self.config.swap_penalty
            } else {
                0.0
            },
            vetoed_by: self.vetoed_by(&c),
            fields,
        }
    }

    /// Applies the thresholds to a score.
    pub fn decide(&self, score: f64) -> Decision {
        self.config.thresholds.decide(score)
    }

    /// Scores an incoming record against candidates and decides.
    ///
    /// The record links to the best-scoring candidate that no veto field contradicts
    /// ([`ModelConfig::link_veto`]) if its score reaches `link`. Otherwise the best candidate
    /// overall decides between review (score ≥ `review`, or a vetoed score ≥ `link`) and new.
    /// A veto disqualifies one pair, not the record: when the same person has another
    /// stored record that agrees, the link is still made.
    pub fn match_candidates<'a, K>(
        &self,
        incoming: &Prepared,
        candidates: impl IntoIterator<Item = (K, &'a Prepared)>,
    ) -> MatchOutcome<K> {
        self.choose(
            candidates
                .into_iter()
                .map(|(k, r)| (k, self.score_candidate(incoming, r))),
        )
    }

    /// How `candidate` scores against `incoming`, and the veto field that bars the link.
    pub fn score_candidate(&self, incoming: &Prepared, candidate: &Prepared) -> Scored {
        let c = self.compare(incoming, candidate);
        Scored {
            score: self.score_comparison(incoming, &c),
            veto: self.vetoed_by(&c),
        }
    }

    /// [`Self::match_candidates`] over candidates already scored, in the same order (on an
    /// exact tie the earlier candidate wins).
    pub fn choose<K>(&self, scored: impl IntoIterator<Item = (K, Scored)>) -> MatchOutcome<K> {
        let link = self.config.thresholds.link;
        let mut best: Option<(K, f64, Option<Field>)> = None;
        let mut best_linkable: Option<(K, f64)> = None;
        for (k, Scored { score: s, veto }) in scored {
            if s >= link && veto.is_none() {
                if best_linkable.as_ref().is_none_or(|(_, b)| s > *b) {
                    best_linkable = Some((k, s));
                }
            } else if best.as_ref().is_none_or(|(_, b, _)| s > *b) {
                best = Some((k, s, veto));
            }
        }
        if let Some((k, s)) = best_linkable {
            return MatchOutcome {
                decision: Decision::Link,
                best: Some((k, s)),
                vetoed_by: None,
            };
        }
        match best {
            None => MatchOutcome {
                decision: Decision::New,
                best: None,
                vetoed_by: None,
            },
            Some((k, s, veto)) => MatchOutcome {
                decision: match self.config.thresholds.decide(s) {
                    Decision::Link => Decision::Review,
                    d => d,
                },
                best: Some((k, s)),
                vetoed_by: veto,
            },
        }
    }

    /// The best-scoring candidate: `candidates` yields `(key, record)` (key = the stored
    /// person, say) and the best key with its score is returned, `None` when there is no
    /// candidate. A person with several records scores as its best record.
    pub fn best_candidate<'a, K>(
        &self,
        incoming: &Prepared,
        candidates: impl IntoIterator<Item = (K, &'a Prepared)>,
    ) -> Option<(K, f64)> {
        let mut best: Option<(K, f64)> = None;
        for (k, r) in candidates {
            let s = self.score(incoming, r);
            if best.as_ref().is_none_or(|(_, b)| s > *b) {
                best = Some((k, s));
            }
        }
        best
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
