//! The model's configuration: m/u probabilities per field level, term-frequency settings,
//! correlated groups, the link veto and the thresholds — all overridable from YAML, checked by
//! [`ModelConfig::validate`]. The model that uses them is in `model.rs`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::compare::Field;
use super::decide::Thresholds;

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
    /// The hub counts the names of this many of the newest stored records when it starts
    /// (a restart refreshes the table).
    pub sample: usize,
}

impl Default for TfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 1.0,
            min_frequency: 1e-4,
            min_total: 500,
            sample: 200_000,
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
