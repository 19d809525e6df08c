//! Probabilistic patient matching (Fellegi–Sunter record linkage) for carehub.
//!
//! Pure computation — no I/O, no database, no logging — so the store and the ingest
//! pipeline decide where records and parameters live. The flow:
//!
//! 1. [`prepare()`] a [`MatchRecord`] once into a [`Prepared`] value (normalisation,
//!    transliteration, phonetic codes, date parsing);
//! 2. store its [`blocking_keys`]; for an incoming record, fetch the stored records that
//!    share a key;
//! 3. [`Model::score`] (or [`Model::explain`]) each candidate: the sum of per-field
//!    `log2(m/u)` weights, term-frequency adjusted for names;
//! 4. decide on the best candidate ([`Model::match_candidates`]): link, review or new, with
//!    a veto that keeps household members (same family name, address and phone, different
//!    given name or birth date) from being merged without a human.
//!
//! The model's m/u probabilities have usable defaults, can be overridden from YAML
//! ([`ModelConfig`] is serde-deserialisable), and can be re-estimated from the store
//! without labels ([`em::train`]).

pub mod blocking;
pub mod compare;
pub mod config;
pub mod decide;
pub mod em;
pub mod link;
pub mod model;
pub mod normalise;
pub mod phonetic;
pub mod prepare;
pub mod similarity;
pub mod survivorship;
pub mod tf;

pub use blocking::blocking_keys;
pub use compare::{Comparison, Field};
pub use decide::{Decision, Thresholds};
pub use em::{EmOptions, Training, train};
pub use link::{IdentityConfig, MatchInput, Matcher};
pub use model::{
    ConfigError, FieldScore, LevelProbs, MatchOutcome, Model, ModelConfig, ScoreBreakdown, Scored, TfConfig,
};
pub use prepare::{MatchRecord, Prepared, Sex, prepare};
pub use survivorship::{SourceState, Survivorship, SurvivorshipConfig};
pub use tf::TermFrequencies;
