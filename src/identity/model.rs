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
//! * **link veto** (on by default) — an outright disagreement on the given name or the
//!   birth date caps the decision at review unless an identifier agrees exactly: a mother
//!   and her child, or twins, share family name, address and phone, and plain summation
//!   scores them as one person (38 and 56 bits in the unit tests' example);
//! * **correlated groups** (opt-in) — street, city, postcode and state describe one fact
//!   (where the person lives), as do phone and email: a group can be made to count only its
//!   strongest member, so a shared address is not counted four times, nor a move penalised
//!   four times.
//!
//! The default probabilities are generic hand-set values (typical magnitudes for a city's
//! patient population), checked on the FEBRL 1/2 benchmark; a deployment should
//! re-estimate them on its own store with [`super::em::train`] and may override any of them
//! in YAML.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::compare::{
    Comparison, Field, MAX_LEVELS, MISSING, N_FIELDS, compare_date, compare_emails, compare_ids,
    compare_name_opt, compare_phones, compare_postcode, compare_sex, compare_state, compare_text, opt,
};
use super::decide::{Decision, Thresholds};
use super::prepare::{NameValue, Prepared};
use super::tf::TermFrequencies;

/// m and u probabilities of one field's levels, in the order of [`Field::levels`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelProbs {
    /// P(level | same person).
    pub m: Vec<f64>,
    /// P(level | different people).
    pub u: Vec<f64>,
}

impl LevelProbs {
    fn new(m: &[f64], u: &[f64]) -> Self {
        Self {
            m: m.to_vec(),
            u: u.to_vec(),
        }
    }
}

/// Term-frequency adjustment settings (names only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfConfig {
    /// Apply the adjustment when a table is attached to the model.
    pub enabled: bool,
    /// Fraction of the adjustment applied (1 = full Fellegi–Sunter TF, 0 = none).
    pub weight: f64,
    /// Frequencies below this are raised to it: a name seen once in a small store is not
    /// proof of identity, and the cap keeps one field from outweighing all others.
    pub min_frequency: f64,
    /// The table is ignored while it counts fewer names than this (a young store's
    /// frequencies are noise).
    pub min_total: u64,
}

impl Default for TfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 1.0,
            min_frequency: 1e-4,
            min_total: 500,
        }
    }
}

/// The whole model configuration: YAML-overridable, every part optional (missing parts take
/// the defaults; a field's `m` and `u` must be given together, with one value per level).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub given: LevelProbs,
    pub family: LevelProbs,
    pub birth_date: LevelProbs,
    pub sex: LevelProbs,
    pub phone: LevelProbs,
    pub email: LevelProbs,
    pub postcode: LevelProbs,
    pub street: LevelProbs,
    pub city: LevelProbs,
    pub state: LevelProbs,
    pub identifier: LevelProbs,
    /// Bits subtracted when the names agree only crosswise (given ↔ family): a swap is a
    /// common clerical slip but slightly less likely than a straight agreement.
    pub swap_penalty: f64,
    /// Term-frequency adjustment of the names' exact level.
    pub term_frequency: TfConfig,
    /// Groups of fields whose outcomes are not independent, each counting only its largest
    /// weight. A shared street makes the same city, postcode and state near certain, and
    /// people who moved disagree on all four at once: summing them counts one fact four
    /// times. Empty by default (plain Fellegi–Sunter sums did better on the benchmarks, and
    /// the veto below already covers households); `[[street, city, postcode, state],
    /// [phone, email]]` is the natural setting where moves are frequent.
    pub correlated_groups: Vec<Vec<Field>>,
    /// Fields whose outright disagreement (their last level) forbids an automatic link: the
    /// decision is capped at review, unless an identifier agrees exactly. With the default
    /// (given name, birth date, identifier) a mother and child, or twins, who share family
    /// name, address and phone are never merged without a human, however high their score;
    /// nor are two records holding different identifiers of one system (for `identifier`,
    /// any value that is not the same counts, even one character off). Drop `identifier`
    /// for data whose identifiers are known to be noisy (FEBRL's corrupted ids).
    pub link_veto: Vec<Field>,
    /// Link / review thresholds.
    pub thresholds: Thresholds,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            //                     exact  jw.94  jw.88  jw.80  phon   disagree
            given: LevelProbs::new(
                &[0.80, 0.06, 0.04, 0.02, 0.01, 0.07],
                &[0.004, 0.002, 0.004, 0.01, 0.005, 0.975],
            ),
            family: LevelProbs::new(
                &[0.82, 0.06, 0.04, 0.02, 0.01, 0.05],
                &[0.002, 0.001, 0.003, 0.01, 0.004, 0.98],
            ),
            //                           exact  swap    one-off same-yr disagree
            birth_date: LevelProbs::new(
                &[0.85, 0.01, 0.08, 0.03, 0.03],
                &[0.0001, 0.00002, 0.001, 0.012, 0.98688],
            ),
            sex: LevelProbs::new(&[0.97, 0.03], &[0.5, 0.5]),
            //                      exact  last8   one-off disagree
            phone: LevelProbs::new(&[0.70, 0.10, 0.05, 0.15], &[0.0001, 0.0001, 0.0005, 0.9993]),
            email: LevelProbs::new(&[0.70, 0.10, 0.20], &[0.0001, 0.001, 0.9989]),
            postcode: LevelProbs::new(&[0.80, 0.08, 0.12], &[0.01, 0.03, 0.96]),
            //                       exact  jw.94  jw.88  jw.80  disagree
            street: LevelProbs::new(
                &[0.70, 0.10, 0.05, 0.03, 0.12],
                &[0.0005, 0.0005, 0.002, 0.01, 0.987],
            ),
            city: LevelProbs::new(
                &[0.75, 0.06, 0.04, 0.03, 0.12],
                &[0.01, 0.002, 0.005, 0.01, 0.973],
            ),
            state: LevelProbs::new(&[0.90, 0.02, 0.08], &[0.25, 0.01, 0.74]),
            identifier: LevelProbs::new(&[0.88, 0.07, 0.05], &[0.00001, 0.0002, 0.99979]),
            swap_penalty: 1.0,
            term_frequency: TfConfig::default(),
            // Opt-in: on FEBRL 1/2 grouping cost precision and recall (see docs/identity.md).
            correlated_groups: Vec::new(),
            link_veto: vec![Field::Given, Field::BirthDate, Field::Identifier],
            thresholds: Thresholds::default(),
        }
    }
}

impl ModelConfig {
    /// The probabilities of one field.
    pub fn probs(&self, field: Field) -> &LevelProbs {
        match field {
            Field::Given => &self.given,
            Field::Family => &self.family,
            Field::BirthDate => &self.birth_date,
            Field::Sex => &self.sex,
            Field::Phone => &self.phone,
            Field::Email => &self.email,
            Field::Postcode => &self.postcode,
            Field::Street => &self.street,
            Field::City => &self.city,
            Field::State => &self.state,
            Field::Identifier => &self.identifier,
        }
    }

    /// The probabilities of one field, mutable (for estimation).
    pub fn probs_mut(&mut self, field: Field) -> &mut LevelProbs {
        match field {
            Field::Given => &mut self.given,
            Field::Family => &mut self.family,
            Field::BirthDate => &mut self.birth_date,
            Field::Sex => &mut self.sex,
            Field::Phone => &mut self.phone,
            Field::Email => &mut self.email,
            Field::Postcode => &mut self.postcode,
            Field::Street => &mut self.street,
            Field::City => &mut self.city,
            Field::State => &mut self.state,
            Field::Identifier => &mut self.identifier,
        }
    }

    /// Checks lengths and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for field in Field::ALL {
            let p = self.probs(field);
            let n = field.levels().len();
            if p.m.len() != n || p.u.len() != n {
                return Err(ConfigError::LevelCount {
                    field: field.name(),
                    expected: n,
                });
            }
            if p.m
                .iter()
                .chain(&p.u)
                .any(|v| !(v.is_finite() && *v > 0.0 && *v <= 1.0))
            {
                return Err(ConfigError::Probability { field: field.name() });
            }
        }
        let mut seen = Vec::new();
        for field in self.correlated_groups.iter().flatten() {
            if seen.contains(field) {
                return Err(ConfigError::Groups { field: field.name() });
            }
            seen.push(*field);
        }
        if !self.thresholds.is_valid() {
            return Err(ConfigError::Thresholds);
        }
        let tf = &self.term_frequency;
        if !(self.swap_penalty.is_finite()
            && tf.weight.is_finite()
            && tf.min_frequency.is_finite()
            && tf.min_frequency > 0.0)
        {
            return Err(ConfigError::NotFinite);
        }
        Ok(())
    }
}

/// A configuration the model cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A field's `m` or `u` has the wrong number of values.
    LevelCount { field: &'static str, expected: usize },
    /// A probability is not in (0, 1].
    Probability { field: &'static str },
    /// A field listed in two correlated groups.
    Groups { field: &'static str },
    /// `review` above `link`, or a non-finite threshold.
    Thresholds,
    /// A non-finite number (or a non-positive minimum frequency).
    NotFinite,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::LevelCount { field, expected } => {
                write!(
                    f,
                    "matching model: `{field}` needs {expected} values in both `m` and `u`"
                )
            }
            ConfigError::Probability { field } => {
                write!(f, "matching model: `{field}` probabilities must be in (0, 1]")
            }
            ConfigError::Groups { field } => {
                write!(
                    f,
                    "matching model: `{field}` is in more than one correlated group"
                )
            }
            ConfigError::Thresholds => {
                write!(f, "matching model: thresholds must be finite with review <= link")
            }
            ConfigError::NotFinite => write!(
                f,
                "matching model: swap_penalty and term_frequency values must be finite, min_frequency > 0"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

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
        let link = self.config.thresholds.link;
        let mut best: Option<(K, f64, Option<Field>)> = None;
        let mut best_linkable: Option<(K, f64)> = None;
        for (k, r) in candidates {
            let c = self.compare(incoming, r);
            let s = self.score_comparison(incoming, &c);
            let veto = self.vetoed_by(&c);
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
mod tests {
    use super::super::prepare::{MatchRecord, prepare};
    use super::*;

    fn person(given: &str, family: &str, dob: &str) -> Prepared {
        prepare(&MatchRecord {
            given: vec![given.into()],
            family: Some(family.into()),
            birth_date: Some(dob.into()),
            ..Default::default()
        })
    }

    fn model() -> Model {
        Model::new(ModelConfig::default()).expect("default config is valid")
    }

    #[test]
    fn name_order_swap_is_recognised_with_penalty() {
        let m = model();
        let a = person("An", "Nguyen", "1990-01-02");
        let b = person("Nguyen", "An", "1990-01-02");
        let straight = m.score(&a, &a);
        let c = m.compare(&a, &b);
        assert!(c.names_swapped);
        assert_eq!(c.level(Field::Given), Some(0));
        assert_eq!(c.level(Field::Family), Some(0));
        assert!((m.score(&a, &b) - (straight - m.config().swap_penalty)).abs() < 1e-9);
    }

    #[test]
    fn family_name_first_in_one_field() {
        let m = model();
        let whole = prepare(&MatchRecord {
            family: Some("Nguyễn Văn An".into()),
            birth_date: Some("1990-01-02".into()),
            ..Default::default()
        });
        let split = person("Văn An", "Nguyễn", "1990-01-02");
        let c = m.compare(&whole, &split);
        assert_eq!(c.level(Field::Family), Some(0));
        assert_eq!(c.level(Field::Given), None);
        let reversed = person("Nguyen", "Van An", "1990-01-02");
        let c = m.compare(&whole, &reversed);
        assert_eq!((c.level(Field::Family), c.names_swapped), (Some(0), true));
    }

    #[test]
    fn missing_fields_are_neutral() {
        let m = model();
        let a = person("John", "Smith", "");
        let b = person("John", "Smith", "1970-01-01");
        let e = m.explain(&a, &b);
        let dob = e
            .fields
            .iter()
            .find(|f| f.field == Field::BirthDate)
            .expect("dob entry");
        assert_eq!((dob.level.as_deref(), dob.weight), (None, 0.0));
        let json = serde_json::to_string(&e).expect("serialises");
        assert!(json.contains("\"birth_date\""));
    }

    #[test]
    fn tf_adjustment_rare_name_outweighs_common() {
        let mut recs: Vec<Prepared> = (0..600).map(|_| person("John", "Smith", "")).collect();
        recs.push(person("Ivan", "Szczepanski", ""));
        recs.push(person("Mary", "Smith", ""));
        let m = model().with_term_frequencies(TermFrequencies::from_prepared(&recs));
        let smith = person("John", "Smith", "1970-01-01");
        let rare = person("John", "Szczepanski", "1970-01-01");
        let s_common = m.score(&smith, &smith);
        let s_rare = m.score(&rare, &rare);
        assert!(s_rare > s_common + 5.0, "{s_rare} vs {s_common}");
        let e = m.explain(&smith, &smith);
        let fam = &e.fields[Field::Family.index()];
        assert!(fam.tf_adjustment < 0.0);
        // A young store's table (fewer names than min_total) is ignored.
        let small = model().with_term_frequencies(TermFrequencies::from_prepared(&recs[..10]));
        assert_eq!(small.score(&smith, &smith), model().score(&smith, &smith));
    }

    #[test]
    fn config_overrides_and_validation() {
        let mut cfg = ModelConfig::default();
        cfg.sex.m = vec![0.5];
        assert!(matches!(Model::new(cfg), Err(ConfigError::LevelCount { .. })));
        let mut cfg = ModelConfig::default();
        cfg.thresholds.review = 99.0;
        assert_eq!(Model::new(cfg).err(), Some(ConfigError::Thresholds));
        let cfg: ModelConfig =
            serde_json::from_str(r#"{"thresholds": {"link": 20}, "swap_penalty": 2}"#).expect("parses");
        assert_eq!(cfg.thresholds.link, 20.0);
        assert_eq!(cfg.thresholds.review, Thresholds::default().review);
        assert_eq!(cfg.given, ModelConfig::default().given);
        let cfg: ModelConfig = serde_json::from_str(
            r#"{"link_veto": [], "correlated_groups": [["street", "city", "postcode", "state"]],
                "family": {"m": [0.8, 0.06, 0.04, 0.02, 0.01, 0.07], "u": [0.01, 0.002, 0.004, 0.01, 0.005, 0.969]}}"#,
        )
        .expect("parses");
        assert!(cfg.link_veto.is_empty());
        assert_eq!(cfg.correlated_groups[0][1], Field::City);
        assert!(Model::new(cfg).is_ok());
        assert!(serde_json::from_str::<ModelConfig>(r#"{"famliy": {}}"#).is_err());
    }

    /// Random strings from a mix of scripts, marks, controls and symbols: nothing may panic,
    /// and scores stay finite.
    #[test]
    fn arbitrary_unicode_never_panics() {
        const ALPHABET: &[char] = &[
            'a',
            'Z',
            '0',
            '9',
            ' ',
            '-',
            '\'',
            '@',
            '+',
            '.',
            'đ',
            'Ơ',
            'ư',
            '\u{0301}',
            '\u{0323}',
            'й',
            'Щ',
            'ъ',
            'ь',
            '王',
            '小',
            '𠀀',
            'ß',
            'Æ',
            'İ',
            'ǅ',
            '\u{200B}',
            '\u{FEFF}',
            '\0',
            '\n',
            '🙂',
            '١',
            'ๆ',
            '\u{FFFD}',
            '\u{10FFFF}',
        ];
        let mut state = 0x1234_5678_u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let text = |next: &mut dyn FnMut(usize) -> usize| -> String {
            let len = next(14);
            (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect()
        };
        let m = model();
        let mut recs = Vec::new();
        for _ in 0..300 {
            let r = MatchRecord {
                given: (0..next(3)).map(|_| text(&mut next)).collect(),
                family: Some(text(&mut next)),
                birth_date: Some(text(&mut next)),
                sex: Some(text(&mut next)),
                phones: vec![text(&mut next)],
                emails: vec![text(&mut next)],
                street: Some(text(&mut next)),
                city: Some(text(&mut next)),
                postcode: Some(text(&mut next)),
                state: Some(text(&mut next)),
                identifiers: vec![(text(&mut next), text(&mut next))],
            };
            let p = prepare(&r);
            let _ = super::super::blocking::blocking_keys(&p);
            recs.push(p);
        }
        let m = m.with_term_frequencies(TermFrequencies::from_prepared(&recs));
        for a in &recs {
            for b in recs.iter().take(40) {
                let e = m.explain(a, b);
                assert!(e.total.is_finite());
                assert!((e.total - m.score(a, b)).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn best_candidate_picks_highest() {
        let m = model();
        let inc = person("Mary", "Jones", "1980-05-06");
        let stored = [
            person("Mary", "Jones", "1980-05-07"),
            person("Mary", "Jones", "1980-05-06"),
        ];
        let best = m.best_candidate(&inc, stored.iter().enumerate());
        assert_eq!(best.map(|(k, _)| k), Some(1));
        assert!(
            m.best_candidate(&inc, std::iter::empty::<(usize, &Prepared)>())
                .is_none()
        );
        let out = m.match_candidates(&inc, stored.iter().map(|r| ("person-1", r)));
        assert_eq!(out.decision, Decision::Link);
        let none = m.match_candidates(&inc, std::iter::empty::<(u8, &Prepared)>());
        assert_eq!((none.decision, none.best), (Decision::New, None));
    }

    fn household(given: &str, dob: &str, phone: &str, street: &str) -> Prepared {
        prepare(&MatchRecord {
            given: vec![given.into()],
            family: Some("Nguyễn".into()),
            birth_date: Some(dob.into()),
            sex: Some("female".into()),
            phones: vec![phone.into()],
            street: Some(street.into()),
            city: Some("Huế".into()),
            postcode: Some("530000".into()),
            state: Some("Thừa Thiên Huế".into()),
            ..Default::default()
        })
    }

    #[test]
    fn household_members_are_never_linked_automatically() {
        let m = model();
        let mother = household("Lan", "1980-04-02", "+84903123456", "12 Lê Lợi");
        let child = household("Mai", "2012-09-15", "+84903123456", "12 Lê Lợi");
        let twin = household("Hoa", "1980-04-02", "+84903123456", "12 Lê Lợi");
        for other in [&child, &twin] {
            let e = m.explain(&mother, other);
            // Far above the link threshold: only the veto stops the merge.
            assert!(e.total > 35.0, "{}", e.total);
            assert_ne!(e.decision, Decision::Link, "{e:?}");
            assert_eq!(e.vetoed_by, Some(Field::Given));
        }
        // The same woman, who moved and changed phone: still one person.
        let moved = prepare(&MatchRecord {
            given: vec!["Lan".into()],
            family: Some("Nguyen".into()),
            birth_date: Some("1980-04-02".into()),
            phones: vec!["+84911000111".into()],
            street: Some("5 Trần Phú".into()),
            city: Some("Đà Nẵng".into()),
            postcode: Some("550000".into()),
            state: Some("Đà Nẵng".into()),
            ..Default::default()
        });
        assert_eq!(m.explain(&mother, &moved).decision, Decision::Link);
        // The twin's own earlier record is linked although her sister scores higher.
        let mut strict = m.clone();
        assert!(
            strict
                .set_thresholds(Thresholds {
                    link: 500.0,
                    review: 1.0
                })
                .is_ok()
        );
        assert_eq!(strict.explain(&mother, &moved).decision, Decision::Review);
        assert!(
            strict
                .set_thresholds(Thresholds {
                    link: 1.0,
                    review: 5.0
                })
                .is_err()
        );
        let twin_again = prepare(&MatchRecord {
            given: vec!["Hoa".into()],
            family: Some("Nguyen".into()),
            birth_date: Some("1980-04-02".into()),
            ..Default::default()
        });
        assert!(m.score(&twin, &mother) > m.score(&twin, &twin_again));
        let out = m.match_candidates(&twin, [("lan", &mother), ("hoa", &twin_again)]);
        assert_eq!(
            (out.decision, out.best.map(|b| b.0)),
            (Decision::Link, Some("hoa"))
        );
        let out = m.match_candidates(&twin, [("lan", &mother)]);
        assert_eq!(
            (out.decision, out.vetoed_by),
            (Decision::Review, Some(Field::Given))
        );
    }

    #[test]
    fn correlated_fields_count_once() {
        let m = Model::new(ModelConfig {
            correlated_groups: vec![
                vec![Field::Street, Field::City, Field::Postcode, Field::State],
                vec![Field::Phone, Field::Email],
            ],
            ..Default::default()
        })
        .expect("valid");
        let a = household("Lan", "1980-04-02", "+84903123456", "12 Lê Lợi");
        let e = m.explain(&a, &a);
        let counted: Vec<Field> = e.fields.iter().filter(|f| f.counted).map(|f| f.field).collect();
        assert!(counted.contains(&Field::Street) && counted.contains(&Field::Phone));
        for f in [Field::City, Field::Postcode, Field::State] {
            assert!(!counted.contains(&f), "{f:?}");
        }
        let sum: f64 = e.fields.iter().filter(|f| f.counted).map(|f| f.weight).sum();
        assert!((sum - e.total).abs() < 1e-9);
        let mut cfg = m.config().clone();
        cfg.correlated_groups.push(vec![Field::City]);
        assert!(matches!(Model::new(cfg), Err(ConfigError::Groups { .. })));
        let mut cfg = ModelConfig {
            correlated_groups: vec![Vec::new(); 40],
            ..Default::default()
        };
        cfg.correlated_groups.push(vec![Field::Sex]);
        let m = Model::new(cfg).expect("empty groups are harmless");
        assert!(m.score(&a, &a).is_finite());
    }
}
