//! Survivorship: the golden record of a person, derived field by field from what each of its
//! source records states, by rules the clinic writes in YAML.
//!
//! A person's golden record is never edited in place: it is recomputed from its source
//! records (each one the latest state its source stated, see
//! [`ProfilePatch::overlay`](crate::model::ProfilePatch::overlay)) whenever one of them changes,
//! a merge brings more, or an unmerge takes some away — so an unmerge is exact by construction.
//!
//! Rules, per field (the default for unnamed fields is `most_recent`):
//! - `most_recent` — the value of the source record updated last;
//! - `source_priority` — the value of the most trusted source that states one (the field's
//!   `sources` list, else the section's), then the most recent;
//! - `most_frequent` — the value most source records state (a list: the one most give first),
//!   then the most recent.
//!
//! An empty value is never a candidate: no rule overwrites a value with nothing. Lists
//! (`names`, `telecom`, `addresses`) keep every source's entries, the winner's first
//! (`keep: all`), or the winner's only (`keep: winner`). Identifiers are always all kept: they
//! are what links records. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::ProfilePatch;

/// How one field's value is chosen among the source records that state one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    #[default]
    MostRecent,
    SourcePriority,
    MostFrequent,
}

/// For list fields: which entries the golden record keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Every source's entries, the winning source's first.
    #[default]
    All,
    /// Only the winning source's entries.
    Winner,
}

/// The fields a rule can be set for (identifiers are always all kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurvivingField {
    Names,
    BirthDate,
    Sex,
    Telecom,
    Addresses,
    Language,
    MaritalStatus,
    Deceased,
    DeceasedAt,
    Consents,
    PreferredChannel,
}

impl SurvivingField {
    /// The field's key in a profile (and in YAML).
    pub fn key(self) -> &'static str {
        match self {
            SurvivingField::Names => "names",
            SurvivingField::BirthDate => "birth_date",
            SurvivingField::Sex => "sex",
            SurvivingField::Telecom => "telecom",
            SurvivingField::Addresses => "addresses",
            SurvivingField::Language => "language",
            SurvivingField::MaritalStatus => "marital_status",
            SurvivingField::Deceased => "deceased",
            SurvivingField::DeceasedAt => "deceased_at",
            SurvivingField::Consents => "consents",
            SurvivingField::PreferredChannel => "preferred_channel",
        }
    }

    fn is_list(self) -> bool {
        matches!(
            self,
            SurvivingField::Names | SurvivingField::Telecom | SurvivingField::Addresses
        )
    }
}

/// One field's rule: a rule name alone (`sex: most_frequent`) or a map
/// (`names: {rule: source_priority, sources: [EMR], keep: winner}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FieldRule {
    pub rule: Rule,
    /// Source systems, most trusted first, for `source_priority`; empty: the section's list.
    pub sources: Vec<String>,
    /// Lists only: every source's entries or the winner's.
    pub keep: Option<Keep>,
}

impl<'de> Deserialize<'de> for FieldRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            rule: Rule,
            #[serde(default)]
            sources: Vec<String>,
            #[serde(default)]
            keep: Option<Keep>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FieldRule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rule (most_recent, source_priority, most_frequent) or a map with `rule`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FieldRule, E> {
                let rule = Rule::deserialize(serde::de::value::StrDeserializer::<E>::new(v))?;
                Ok(FieldRule {
                    rule,
                    ..FieldRule::default()
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FieldRule, A::Error> {
                let full = Full::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldRule {
                    rule: full.rule,
                    sources: full.sources,
                    keep: full.keep,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The `identity.survivorship` section of `carehub.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurvivorshipConfig {
    /// The rule of every field not named under `fields`.
    pub default: Rule,
    /// Source systems, most trusted first: what `source_priority` uses when a field names no
    /// list of its own. A name matches a record's source system exactly or its sending
    /// application (the part before `^` of `MSH-3^MSH-4`), case aside.
    pub sources: Vec<String>,
    /// Rules per field.
    pub fields: BTreeMap<SurvivingField, FieldRule>,
}

impl SurvivorshipConfig {
    /// Every problem, as (field path under `identity.survivorship`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let blank = |list: &[String]| list.iter().any(|s| s.trim().is_empty());
        if blank(&self.sources) {
            out.push(("sources".into(), "a source system name is empty".into()));
        }
        if self.default == Rule::SourcePriority && self.sources.is_empty() {
            out.push((
                "default".into(),
                "source_priority needs `sources`, the source systems most trusted first".into(),
            ));
        }
        for (field, rule) in &self.fields {
            let path = format!("fields.{}", field.key());
            if rule.rule == Rule::SourcePriority && rule.sources.is_empty() && self.sources.is_empty() {
                out.push((
                    path.clone(),
                    "source_priority needs `sources` (here or for the whole section), most trusted first"
                        .into(),
                ));
            }
            if blank(&rule.sources) {
                out.push((format!("{path}.sources"), "a source system name is empty".into()));
            }
            if rule.keep.is_some() && !field.is_list() {
                out.push((
                    format!("{path}.keep"),
                    "only lists (names, telecom, addresses) have entries to keep".into(),
                ));
            }
        }
        out
    }
}

/// One source record's current statement about a person, as survivorship reads it.
#[derive(Clone, Copy, Debug)]
pub struct SourceState<'a> {
    pub record_id: i64,
    pub system: &'a str,
    /// When the record was last updated (RFC 3339, UTC: compared as text).
    pub at: &'a str,
    /// Its last message: breaks ties between records updated in the same instant.
    pub message_id: i64,
    pub patch: &'a ProfilePatch,
}

/// For each field of a golden record, the source records whose value it kept.
pub type Chosen = BTreeMap<&'static str, Vec<i64>>;

/// The configured rules, ready to derive golden records.
#[derive(Clone, Debug, Default)]
pub struct Survivorship {
    config: SurvivorshipConfig,
}

impl Survivorship {
    pub fn new(config: SurvivorshipConfig) -> Survivorship {
        Survivorship { config }
    }

    pub fn config(&self) -> &SurvivorshipConfig {
        &self.config
    }

    /// The golden record of a person with these source records.
    pub fn golden(&self, sources: &[SourceState<'_>]) -> ProfilePatch {
        self.derive(sources).0
    }

    /// The golden record, and for each field the source records whose value it kept.
    pub fn derive(&self, sources: &[SourceState<'_>]) -> (ProfilePatch, Chosen) {
        let mut golden = ProfilePatch::default();
        let mut chosen = Chosen::new();
        if let [only] = sources {
            // One source: its statement is the golden record (the common case at ingest).
            golden = only.patch.clone();
            if golden.deceased_at.is_some() {
                golden.deceased.get_or_insert(true);
            }
            for key in present_keys(&golden) {
                chosen.insert(key, vec![only.record_id]);
            }
            return (golden, chosen);
        }
        let by_age = newest_first(sources);

        macro_rules! scalar {
            ($field:ident, $which:expr) => {{
                let order = self.order(
                    $which,
                    sources,
                    &by_age,
                    &|p| p.$field.is_some(),
                    &|a, b| a.$field == b.$field,
                );
                if let Some(&best) = order.first() {
                    golden.$field.clone_from(&sources[best].patch.$field);
                    chosen.insert(
                        $which.key(),
                        supporters(sources, &order, |p| p.$field == golden.$field),
                    );
                }
            }};
        }
        scalar!(birth_date, SurvivingField::BirthDate);
        scalar!(sex, SurvivingField::Sex);
        scalar!(language, SurvivingField::Language);
        scalar!(marital_status, SurvivingField::MaritalStatus);
        scalar!(deceased, SurvivingField::Deceased);
        scalar!(deceased_at, SurvivingField::DeceasedAt);
        scalar!(preferred_channel, SurvivingField::PreferredChannel);
        if golden.deceased_at.is_some() {
            golden.deceased.get_or_insert(true);
        }

        macro_rules! list {
            ($field:ident, $which:expr) => {{
                let order = self.order(
                    $which,
                    sources,
                    &by_age,
                    &|p| !p.$field.is_empty(),
                    &|a, b| a.$field.first() == b.$field.first(),
                );
                let keep = self.rule($which).keep.unwrap_or_default();
                let take = if keep == Keep::Winner {
                    order.len().min(1)
                } else {
                    order.len()
                };
                let mut ids = Vec::new();
                for &i in &order[..take] {
                    let before = golden.$field.len();
                    for item in &sources[i].patch.$field {
                        if !golden.$field.contains(item) {
                            golden.$field.push(item.clone());
                        }
                    }
                    if golden.$field.len() > before || order.first() == Some(&i) {
                        ids.push(sources[i].record_id);
                    }
                }
                if !ids.is_empty() {
                    chosen.insert($which.key(), ids);
                }
            }};
        }
        list!(names, SurvivingField::Names);
        list!(telecom, SurvivingField::Telecom);
        list!(addresses, SurvivingField::Addresses);

        // Identifiers: all of them, in the order the records were made.
        let mut by_id: Vec<usize> = (0..sources.len()).collect();
        by_id.sort_by_key(|&i| sources[i].record_id);
        let mut ids = Vec::new();
        for &i in &by_id {
            let before = golden.identifiers.len();
            for item in &sources[i].patch.identifiers {
                if !golden.identifiers.contains(item) {
                    golden.identifiers.push(item.clone());
                }
            }
            if golden.identifiers.len() > before {
                ids.push(sources[i].record_id);
            }
        }
        if !ids.is_empty() {
            chosen.insert("identifiers", ids);
        }

        // Consents: one decision per purpose, chosen by the rule among the records stating one.
        let mut scopes: Vec<&str> = Vec::new();
        for &i in &by_age {
            for c in &sources[i].patch.consents {
                if !scopes.contains(&c.scope.as_str()) {
                    scopes.push(&c.scope);
                }
            }
        }
        let mut ids = Vec::new();
        for scope in scopes {
            let decision =
                |p: &ProfilePatch| p.consents.iter().find(|c| c.scope == scope).map(|c| c.decision);
            let order = self.order(
                SurvivingField::Consents,
                sources,
                &by_age,
                &|p| decision(p).is_some(),
                &|a, b| decision(a) == decision(b),
            );
            if let Some(&best) = order.first()
                && let Some(c) = sources[best].patch.consents.iter().find(|c| c.scope == scope)
            {
                golden.consents.push(c.clone());
                if !ids.contains(&sources[best].record_id) {
                    ids.push(sources[best].record_id);
                }
            }
        }
        if !ids.is_empty() {
            chosen.insert("consents", ids);
        }
        (golden, chosen)
    }

    fn rule(&self, field: SurvivingField) -> FieldRule {
        self.config.fields.get(&field).cloned().unwrap_or(FieldRule {
            rule: self.config.default,
            ..FieldRule::default()
        })
    }

    /// The sources that state a value for the field, best first by its rule.
    fn order(
        &self,
        field: SurvivingField,
        sources: &[SourceState<'_>],
        by_age: &[usize],
        present: &dyn Fn(&ProfilePatch) -> bool,
        agree: &dyn Fn(&ProfilePatch, &ProfilePatch) -> bool,
    ) -> Vec<usize> {
        let rule = self.rule(field);
        let mut order: Vec<usize> = by_age
            .iter()
            .copied()
            .filter(|&i| present(sources[i].patch))
            .collect();
        match rule.rule {
            Rule::MostRecent => {}
            Rule::SourcePriority => {
                let list = if rule.sources.is_empty() {
                    &self.config.sources
                } else {
                    &rule.sources
                };
                // Stable: within one rank, the most recent first.
                order.sort_by_key(|&i| rank(list, sources[i].system));
            }
            Rule::MostFrequent => {
                // Stable: among values stated equally often, the most recent first.
                let mut counted: Vec<(usize, usize)> = order
                    .iter()
                    .map(|&i| {
                        (
                            i,
                            order
                                .iter()
                                .filter(|&&j| agree(sources[i].patch, sources[j].patch))
                                .count(),
                        )
                    })
                    .collect();
                counted.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
                order = counted.into_iter().map(|(i, _)| i).collect();
            }
        }
        order
    }
}

/// Indices of the sources, the most recently updated first.
fn newest_first(sources: &[SourceState<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&sources[a], &sources[b]);
        (b.at, b.message_id, b.record_id).cmp(&(a.at, a.message_id, a.record_id))
    });
    order
}

/// A source system's place in a priority list; unlisted systems come after every listed one.
fn rank(list: &[String], system: &str) -> usize {
    let application = system.split('^').next().unwrap_or(system);
    list.iter()
        .position(|s| s.eq_ignore_ascii_case(system) || s.eq_ignore_ascii_case(application))
        .unwrap_or(list.len())
}

/// The records (in `order`) whose value is the one kept.
fn supporters(
    sources: &[SourceState<'_>],
    order: &[usize],
    same: impl Fn(&ProfilePatch) -> bool,
) -> Vec<i64> {
    order
        .iter()
        .filter(|&&i| same(sources[i].patch))
        .map(|&i| sources[i].record_id)
        .collect()
}

/// The keys of the fields a patch states.
fn present_keys(p: &ProfilePatch) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut add = |present: bool, key: &'static str| {
        if present {
            keys.push(key);
        }
    };
    add(!p.identifiers.is_empty(), "identifiers");
    add(!p.names.is_empty(), "names");
    add(p.birth_date.is_some(), "birth_date");
    add(p.sex.is_some(), "sex");
    add(!p.telecom.is_empty(), "telecom");
    add(!p.addresses.is_empty(), "addresses");
    add(p.language.is_some(), "language");
    add(p.marital_status.is_some(), "marital_status");
    add(p.deceased.is_some(), "deceased");
    add(p.deceased_at.is_some(), "deceased_at");
    add(!p.consents.is_empty(), "consents");
    add(p.preferred_channel.is_some(), "preferred_channel");
    keys
}

#[cfg(test)]
#[path = "survivorship_tests.rs"]
mod tests;
