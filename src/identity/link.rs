//! Matching in the ingest path: what the store asks of the model.
//!
//! A mapped record that names no identifier already held by a person is compared with the
//! stored source records that share a blocking key with it, and linked, sent to review, or
//! made a new person (`store/batch.rs` decides, record by record). This module turns the
//! canonical [`ProfilePatch`] into the model's input, hashes the blocking keys the store
//! indexes, and holds the configured model.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    MatchRecord, Model, ModelConfig, Prepared, ScoreBreakdown, Survivorship, SurvivorshipConfig,
    blocking_keys, prepare,
};
use crate::model::{ContactSystem, ProfilePatch, Sex};

/// The `identity:` section of `carehub.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Probabilistic matching on (a record with no known identifier is compared with
    /// similar persons). Off: only a shared identifier links records.
    pub matching: bool,
    /// A blocking key shared by more stored records than this is too common to narrow
    /// anything (a birth date in a large clinic, the phonetic code of Nguyễn): it is skipped,
    /// and the record's other keys find its candidates.
    pub max_block: usize,
    /// Most stored records one incoming record is compared with. Keys are read most selective
    /// first (identifier, phone, email, both names, birth date, postcode, one name + year);
    /// once this many candidates are found the rest are not read.
    pub max_candidates: usize,
    /// m/u probabilities, thresholds (`link`, `review`), veto, term frequencies: see
    /// docs/identity.md. Every part is optional.
    pub model: ModelConfig,
    /// How a person's golden record is derived from its source records, field by field
    /// (docs/identity.md "Survivorship").
    pub survivorship: SurvivorshipConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            matching: true,
            max_block: 25,
            max_candidates: 40,
            model: ModelConfig::default(),
            survivorship: SurvivorshipConfig::default(),
        }
    }
}

/// The configured model, shared by every batch.
#[derive(Debug)]
pub struct Matcher {
    pub model: Model,
    pub matching: bool,
    pub max_block: usize,
    pub max_candidates: usize,
    /// The golden record's rules.
    pub survivorship: Survivorship,
}

impl Matcher {
    pub fn new(config: &IdentityConfig) -> Result<Matcher, String> {
        let model = Model::new(config.model.clone()).map_err(|e| e.to_string())?;
        Ok(Matcher {
            model,
            matching: config.matching,
            max_block: config.max_block.max(1),
            max_candidates: config.max_candidates.max(1),
            survivorship: Survivorship::new(config.survivorship.clone()),
        })
    }

    /// Attaches name frequencies counted over these stored patches: agreement on a common
    /// name then weighs less than on a rare one (`model.term_frequency`; ignored while the
    /// table counts fewer than `min_total` names).
    pub fn with_name_frequencies<'a>(
        mut self,
        stored: impl IntoIterator<Item = &'a ProfilePatch>,
    ) -> Matcher {
        let prepared: Vec<Prepared> = stored.into_iter().map(|p| prepare(&match_record(p))).collect();
        self.model
            .set_term_frequencies(Some(super::TermFrequencies::from_prepared(&prepared)));
        self
    }

    /// Raises the thresholds for a store holding `persons` (`thresholds.calibrated_for`):
    /// the configured values hold for the calibration size. Returns the shift, in bits.
    pub fn with_store_size(mut self, persons: u64) -> (Matcher, f64) {
        let configured = *self.model.thresholds();
        let scaled = configured.scaled(persons);
        // Scaling adds the same finite shift to both: still valid.
        let _ = self.model.set_thresholds(scaled);
        (self, scaled.link - configured.link)
    }

    /// The score of `incoming` against `stored`, field by field.
    pub fn explain(&self, incoming: &Prepared, stored: &Prepared) -> ScoreBreakdown {
        self.model.explain(incoming, stored)
    }
}

impl Default for Matcher {
    fn default() -> Self {
        Matcher::new(&IdentityConfig::default()).expect("the default identity configuration is valid")
    }
}

/// A patch, as the model reads it: its first (preferred) name and address, every phone,
/// email and identifier.
pub fn match_record(p: &ProfilePatch) -> MatchRecord {
    let name = p.names.first();
    let address = p.addresses.first();
    let contacts = |system: ContactSystem| {
        p.telecom
            .iter()
            .filter(|c| c.system == system)
            .map(|c| c.value.clone())
            .collect::<Vec<_>>()
    };
    MatchRecord {
        given: name.map(|n| n.given.clone()).unwrap_or_default(),
        family: name.and_then(|n| n.family.clone()),
        birth_date: p.birth_date.as_ref().map(|d| d.as_str().to_string()),
        sex: p.sex.and_then(|s| match s {
            Sex::Male => Some("male".to_string()),
            Sex::Female => Some("female".to_string()),
            Sex::Other => Some("other".to_string()),
            Sex::Unknown => None,
        }),
        phones: contacts(ContactSystem::Phone),
        emails: contacts(ContactSystem::Email),
        street: address.filter(|a| !a.lines.is_empty()).map(|a| a.lines.join(" ")),
        city: address.and_then(|a| a.city.clone()),
        postcode: address.and_then(|a| a.postal_code.clone()),
        state: address.and_then(|a| a.state.clone()),
        identifiers: p
            .identifiers
            .iter()
            .map(|i| (i.system.clone(), i.value.clone()))
            .collect(),
    }
}

/// A patch prepared for comparison, with its hashed blocking keys.
#[derive(Debug)]
pub struct MatchInput {
    pub prepared: Prepared,
    pub keys: Vec<i64>,
}

impl MatchInput {
    pub fn of(p: &ProfilePatch) -> MatchInput {
        let prepared = prepare(&match_record(p));
        let mut keys = blocking_keys(&prepared);
        // Most selective first: the store reads keys in this order and stops early.
        keys.sort_by_key(|k| selectivity_rank(k));
        let keys = keys.iter().map(|k| hash_key(k)).collect();
        MatchInput { prepared, keys }
    }
}

/// Where a kind of blocking key stands, most selective first.
fn selectivity_rank(key: &str) -> u8 {
    match key.split_once(':').map(|(kind, _)| kind) {
        Some("id") => 0,
        Some("tel") => 1,
        Some("em") => 2,
        Some("eml") => 3,
        Some("ny") => 4,
        Some("nm") => 5,
        Some("dob") => 6,
        Some("pc") => 7,
        _ => 8,
    }
}

/// A blocking key as the store keeps it: 64 bits of its SHA-256. Keys hold normalised
/// personal data (a birth date, a phone's digits); the store only ever compares them.
pub fn hash_key(key: &str) -> i64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Decision;

    fn patch(json: &str) -> ProfilePatch {
        serde_json::from_str(json).expect("test patch")
    }

    #[test]
    fn the_same_person_spelled_by_two_systems_links_and_a_relative_does_not() {
        let m = Matcher::default();
        let emr = MatchInput::of(&patch(
            r#"{"names":[{"family":"Nguyễn","given":["Thị","Lan"]}],"birth_date":"1985-03-07","sex":"female",
                "telecom":[{"system":"phone","value":"+84903123456"}],
                "addresses":[{"lines":["12 Lý Thường Kiệt"],"city":"Hà Nội"}]}"#,
        ));
        let lis = MatchInput::of(&patch(
            r#"{"names":[{"family":"NGUYEN","given":["THI LAN"]}],"birth_date":"1985-03-07","sex":"female",
                "telecom":[{"system":"phone","value":"+84903123465"}]}"#,
        ));
        let daughter = MatchInput::of(&patch(
            r#"{"names":[{"family":"Nguyễn","given":["Thị","Mai"]}],"birth_date":"2012-09-01","sex":"female",
                "telecom":[{"system":"phone","value":"+84903123456"}],
                "addresses":[{"lines":["12 Lý Thường Kiệt"],"city":"Hà Nội"}]}"#,
        ));
        assert!(
            emr.keys.iter().any(|k| lis.keys.contains(k)),
            "they share a blocking key"
        );
        let linked = m.model.match_candidates(&lis.prepared, [("emr", &emr.prepared)]);
        assert_eq!(linked.decision, Decision::Link);
        let relative = m
            .model
            .match_candidates(&daughter.prepared, [("emr", &emr.prepared)]);
        assert_ne!(
            relative.decision,
            Decision::Link,
            "a household member is never linked automatically"
        );
    }

    #[test]
    fn keys_are_hashed_and_stable() {
        assert_eq!(hash_key("dob:19850307"), hash_key("dob:19850307"));
        assert_ne!(hash_key("dob:19850307"), hash_key("dob:19850308"));
    }
}
