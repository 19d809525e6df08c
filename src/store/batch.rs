//! Planning a group commit, in memory: which rows a batch of records writes.
//!
//! The backend looks up what the batch needs to know (earlier copies of its messages, the
//! persons its identifiers point to, their golden records, existing source records) in a few
//! set-based queries, this module decides record by record — in arrival order, so that two
//! records of the same new person in one batch still make one person — and the backend writes
//! the result in a few multi-row statements. A batch costs about ten statements whatever its
//! size, on SQLite and PostgreSQL alike. Pure: no SQL here.
//!
//! Field provenance is not written per field: each source record keeps the latest patch it
//! stated, with its system, message and time, and the read side expands it field by field.

use std::collections::{HashMap, HashSet};

use super::types::*;
use crate::model::ProfilePatch;

/// Dedupe key of a message: sender, control id, content hash.
pub type MessageKey = (Option<String>, String, String);

/// What the backend looked up for a batch.
#[derive(Debug, Default)]
pub struct Lookups {
    /// Earlier accepted copies: key → (message id, person id).
    pub accepted: HashMap<MessageKey, (i64, Option<String>)>,
    /// (system, value) → person id.
    pub identifiers: HashMap<(String, String), String>,
    /// Golden records of the persons above.
    pub profiles: HashMap<String, ProfilePatch>,
    /// (source system, source key) → source record id.
    pub source_records: HashMap<(String, String), i64>,
    /// First free ids.
    pub next_message_id: i64,
    pub next_source_record_id: i64,
}

/// What the backend must look up before planning.
#[derive(Debug, Default)]
pub struct LookupKeys {
    pub control_ids: Vec<String>,
    pub identifier_values: Vec<String>,
    pub source_keys: Vec<String>,
}

pub fn lookup_keys(records: &[NewRecord]) -> LookupKeys {
    let mut keys = LookupKeys::default();
    let mut seen = HashSet::new();
    for r in records {
        if let Some(c) = &r.control_id
            && seen.insert(("c", c.clone()))
        {
            keys.control_ids.push(c.clone());
        }
        if let Disposition::Apply {
            patch: Some(p),
            source_system,
            ..
        } = &r.disposition
        {
            for i in &p.identifiers {
                if seen.insert(("i", i.value.clone())) {
                    keys.identifier_values.push(i.value.clone());
                }
            }
            let key = source_key(r, p);
            if seen.insert(("s", key.clone())) {
                keys.source_keys.push(key);
            }
            let _ = source_system;
        }
    }
    keys
}

/// The key of the record a patch comes from, in its source system: its first identifier, or
/// — when it names none — the message itself (control id and content), so that two different
/// messages that happen to share a control id never share a source record.
pub fn source_key(r: &NewRecord, p: &ProfilePatch) -> String {
    match p.identifiers.first() {
        Some(i) => format!("{}|{}", i.system, i.value),
        None => format!("msg|{}|{}", r.control_id.as_deref().unwrap_or(""), r.content_hash),
    }
}

pub struct MessageRow<'a> {
    pub id: i64,
    pub record: &'a NewRecord,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub warnings: Option<String>,
    pub mapping: Option<String>,
    pub person_id: Option<String>,
    pub duplicate_of: Option<i64>,
}

pub struct PersonRow {
    pub id: String,
    pub profile: String,
    pub created_at: String,
    pub updated_at: String,
}

pub struct SourceRecordRow {
    pub id: i64,
    pub source_system: String,
    pub source_key: String,
    pub person_id: String,
    pub patch: String,
    pub last_message_id: i64,
    pub at: String,
}

pub struct IdentifierRow {
    pub system: String,
    pub value: String,
    pub kind: Option<String>,
    pub person_id: String,
    pub source_record_id: i64,
    pub at: String,
}

#[derive(Default)]
pub struct Counters {
    pub received: i64,
    pub processed: i64,
    pub errors: i64,
    pub duplicates: i64,
    pub unmapped: i64,
    pub last_message_at: Option<String>,
}

/// Every row a batch writes, and what each record became.
#[derive(Default)]
pub struct Plan<'a> {
    pub applied: Vec<Applied>,
    pub messages: Vec<MessageRow<'a>>,
    pub persons: Vec<PersonRow>,
    pub source_records: Vec<SourceRecordRow>,
    pub identifiers: Vec<IdentifierRow>,
    pub counters: Vec<(String, Counters)>,
}

/// Decides, record by record, what the batch writes.
pub fn plan<'a>(records: &'a [NewRecord], mut l: Lookups) -> Result<Plan<'a>, serde_json::Error> {
    let mut plan = Plan::default();
    let mut next_source = l.next_source_record_id;
    // Persons touched by this batch, in first-touch order, with their created_at when new.
    let mut dirty: Vec<(String, Option<String>, String)> = Vec::new();
    // Source records touched: (system, key) → index in plan.source_records.
    let mut sources: HashMap<(String, String), usize> = HashMap::new();
    let mut identifiers_added: HashSet<(String, String)> = HashSet::new();
    let mut counters: Vec<(String, Counters)> = Vec::new();

    for (id, r) in (l.next_message_id..).zip(records) {
        let key = r
            .control_id
            .as_ref()
            .map(|c| (r.sender.clone(), c.clone(), r.content_hash.clone()));
        let earlier = match (&r.disposition, &key) {
            (Disposition::Error { .. }, _) | (_, None) => None,
            (_, Some(k)) => l.accepted.get(k).cloned(),
        };
        let mut row = MessageRow {
            id,
            record: r,
            status: MessageStatus::Processed,
            error: None,
            warnings: None,
            mapping: None,
            person_id: None,
            duplicate_of: None,
        };
        if let Some((first, person)) = earlier {
            row.status = MessageStatus::Duplicate;
            row.person_id = person;
            row.duplicate_of = Some(first);
        } else {
            match &r.disposition {
                Disposition::Error { reason } => {
                    row.status = MessageStatus::Error;
                    row.error = Some(reason.clone());
                }
                Disposition::Unmapped { reason } => {
                    row.status = MessageStatus::Unmapped;
                    row.error = Some(reason.clone());
                }
                Disposition::Apply {
                    mapping,
                    source_system,
                    patch,
                    warnings,
                } => {
                    row.mapping = Some(mapping.clone());
                    if !warnings.is_empty() {
                        row.warnings = Some(serde_json::to_string(warnings)?);
                    }
                    if let Some(p) = patch {
                        // Identity, first version: whoever holds one of the identifiers.
                        let found = p
                            .identifiers
                            .iter()
                            .find_map(|i| l.identifiers.get(&(i.system.clone(), i.value.clone())).cloned());
                        let person_id = match found {
                            Some(pid) => {
                                l.profiles.entry(pid.clone()).or_default().absorb(p);
                                if !dirty.iter().any(|(d, _, _)| *d == pid) {
                                    dirty.push((pid.clone(), None, r.received_at.clone()));
                                }
                                pid
                            }
                            None => {
                                let pid = uuid::Uuid::now_v7().to_string();
                                l.profiles.insert(pid.clone(), p.clone());
                                dirty.push((pid.clone(), Some(r.received_at.clone()), r.received_at.clone()));
                                pid
                            }
                        };
                        if let Some(d) = dirty.iter_mut().find(|(d, _, _)| *d == person_id) {
                            d.2 = r.received_at.clone();
                        }
                        let skey = (source_system.clone(), source_key(r, p));
                        let patch_json = serde_json::to_string(p)?;
                        let source_id = match sources.get(&skey) {
                            Some(&i) => {
                                let s = &mut plan.source_records[i];
                                s.patch = patch_json;
                                s.last_message_id = id;
                                s.at = r.received_at.clone();
                                s.id
                            }
                            None => {
                                let sid = match l.source_records.get(&skey) {
                                    Some(&sid) => sid,
                                    None => {
                                        next_source += 1;
                                        next_source - 1
                                    }
                                };
                                sources.insert(skey.clone(), plan.source_records.len());
                                plan.source_records.push(SourceRecordRow {
                                    id: sid,
                                    source_system: skey.0.clone(),
                                    source_key: skey.1.clone(),
                                    person_id: person_id.clone(),
                                    patch: patch_json,
                                    last_message_id: id,
                                    at: r.received_at.clone(),
                                });
                                sid
                            }
                        };
                        for i in &p.identifiers {
                            let k = (i.system.clone(), i.value.clone());
                            if !l.identifiers.contains_key(&k) && identifiers_added.insert(k.clone()) {
                                l.identifiers.insert(k, person_id.clone());
                                plan.identifiers.push(IdentifierRow {
                                    system: i.system.clone(),
                                    value: i.value.clone(),
                                    kind: i.kind.clone(),
                                    person_id: person_id.clone(),
                                    source_record_id: source_id,
                                    at: r.received_at.clone(),
                                });
                            }
                        }
                        row.person_id = Some(person_id);
                    }
                }
            }
            if let Some(k) = key
                && matches!(row.status, MessageStatus::Processed | MessageStatus::Unmapped)
            {
                l.accepted.insert(k, (id, row.person_id.clone()));
            }
        }

        let c = match counters.iter_mut().position(|(n, _)| *n == r.connector) {
            Some(i) => &mut counters[i].1,
            None => {
                counters.push((r.connector.clone(), Counters::default()));
                &mut counters.last_mut().expect("just pushed").1
            }
        };
        c.received += 1;
        c.last_message_at = Some(r.received_at.clone());
        match row.status {
            MessageStatus::Processed => c.processed += 1,
            MessageStatus::Error => c.errors += 1,
            MessageStatus::Duplicate => c.duplicates += 1,
            MessageStatus::Unmapped => c.unmapped += 1,
            MessageStatus::Received => {}
        }
        plan.applied.push(Applied {
            message_id: id,
            status: row.status,
            person_id: row.person_id.clone(),
        });
        plan.messages.push(row);
    }

    for (id, created, updated) in dirty {
        let profile = serde_json::to_string(l.profiles.get(&id).expect("profile of a touched person"))?;
        plan.persons.push(PersonRow {
            created_at: created.unwrap_or_else(|| updated.clone()),
            id,
            profile,
            updated_at: updated,
        });
    }
    plan.counters = counters;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identifier;

    fn record(control_id: &str, mrn: &str, hash: &str) -> NewRecord {
        NewRecord {
            connector: "c".into(),
            origin: None,
            received_at: "2026-11-20T00:00:00Z".into(),
            sender: Some("EMR^H".into()),
            control_id: Some(control_id.into()),
            message_type: Some("ADT^A04".into()),
            charset: None,
            content_hash: hash.into(),
            raw: b"MSH|".to_vec(),
            disposition: Disposition::Apply {
                mapping: "m".into(),
                source_system: "EMR^H".into(),
                patch: Some(ProfilePatch {
                    identifiers: vec![Identifier {
                        system: "H".into(),
                        value: mrn.into(),
                        kind: None,
                    }],
                    ..Default::default()
                }),
                warnings: vec![],
            },
        }
    }

    fn fresh() -> Lookups {
        Lookups {
            next_message_id: 10,
            next_source_record_id: 5,
            ..Default::default()
        }
    }

    #[test]
    fn two_records_of_one_new_person_in_a_batch_make_one_person() {
        let records = vec![record("1", "A", "h1"), record("2", "A", "h2")];
        let plan = plan(&records, fresh()).unwrap();
        assert_eq!(plan.persons.len(), 1);
        assert_eq!(plan.source_records.len(), 1);
        assert_eq!(plan.identifiers.len(), 1);
        assert_eq!(plan.applied[0].person_id, plan.applied[1].person_id);
        assert_eq!((plan.applied[0].message_id, plan.applied[1].message_id), (10, 11));
        assert_eq!(plan.source_records[0].last_message_id, 11);
    }

    #[test]
    fn a_copy_within_the_batch_or_from_before_is_a_duplicate() {
        let records = vec![
            record("1", "A", "h1"),
            record("1", "A", "h1"),
            record("9", "B", "h9"),
        ];
        let mut l = fresh();
        l.accepted.insert(
            (Some("EMR^H".into()), "9".into(), "h9".into()),
            (3, Some("p-old".into())),
        );
        let plan = plan(&records, l).unwrap();
        let statuses: Vec<_> = plan.applied.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            vec![
                MessageStatus::Processed,
                MessageStatus::Duplicate,
                MessageStatus::Duplicate
            ]
        );
        assert_eq!(plan.messages[1].duplicate_of, Some(10));
        assert_eq!(plan.messages[2].duplicate_of, Some(3));
        assert_eq!(plan.applied[2].person_id.as_deref(), Some("p-old"));
        assert_eq!(plan.persons.len(), 1, "only the first record touches a person");
    }

    #[test]
    fn a_known_identifier_updates_the_existing_golden_record() {
        let mut l = fresh();
        l.identifiers.insert(("H".into(), "A".into()), "p1".into());
        l.profiles.insert(
            "p1".into(),
            ProfilePatch {
                language: Some("vi".into()),
                ..Default::default()
            },
        );
        let records = [record("1", "A", "h1")];
        let plan = plan(&records, l).unwrap();
        assert_eq!(plan.persons.len(), 1);
        assert_eq!(plan.persons[0].id, "p1");
        assert!(
            plan.persons[0].profile.contains("\"language\":\"vi\""),
            "nothing erased"
        );
        assert!(
            plan.identifiers.is_empty(),
            "a known identifier is not inserted again"
        );
    }
}
