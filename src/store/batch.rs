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
use std::sync::Arc;

use super::types::*;
use crate::identity::{MatchInput, Matcher, Prepared, SourceState, Survivorship};
use crate::model::ProfilePatch;

#[path = "batch_clinical.rs"]
mod clinical;
pub use clinical::{ClinicalRow, DeletionRow, merge_json};

#[path = "batch_notify.rs"]
mod notify;
pub use notify::{PriorKey, outbox, watched};

#[path = "batch_changes.rs"]
mod changes;
pub use changes::{changes, persons_to_compare};

#[path = "batch_match.rs"]
mod probe;
pub use probe::{match_result, probe};

#[path = "batch_candidates.rs"]
mod candidates;
use candidates::{BatchKeys, MatchLink, match_one};
pub use candidates::{keys_to_match, match_inputs, records_to_match};

/// Notes a stored accepted message in `accepted` and `latest` (look-ups call it per row).
pub fn note_accepted(l: &mut Lookups, key: MessageKey, id: i64, person: Option<String>) {
    let latest = l
        .latest
        .entry((key.0.clone(), key.1.clone()))
        .or_insert((id, key.2.clone()));
    if id > latest.0 {
        *latest = (id, key.2.clone());
    }
    let entry = l.accepted.entry(key).or_insert((id, person.clone()));
    if id < entry.0 {
        *entry = (id, person);
    }
}

/// Dedupe key of a message: sender, control id, content hash.
pub type MessageKey = (Option<String>, String, String);

/// What the backend looked up for a batch.
#[derive(Debug, Default)]
pub struct Lookups {
    /// Earlier accepted copies: key → (message id, person id).
    pub accepted: HashMap<MessageKey, (i64, Option<String>)>,
    /// The latest accepted message of each (sender, control id): (message id, content hash).
    /// A copy is a duplicate only of the latest content: A, then B, then A again is applied
    /// (a FHIR resource without versionId changed back).
    pub latest: HashMap<(Option<String>, String), (i64, String)>,
    /// (system, value) → person id.
    pub identifiers: HashMap<(String, String), String>,
    /// Golden records of the persons above.
    pub profiles: HashMap<String, ProfilePatch>,
    /// (source system, source key) → source record id.
    pub source_records: HashMap<(String, String), i64>,
    /// First free ids.
    pub next_message_id: i64,
    pub next_source_record_id: i64,
    /// Blocking key → the stored source records holding it (keys held by more than the
    /// configured `max_block` records are left out: they narrow nothing).
    pub keyed: HashMap<i64, Vec<i64>>,
    /// The keys left out of `keyed` because more than `max_block` stored records hold them.
    pub common_keys: HashSet<i64>,
    /// The source records named in `keyed`: id → (person id, prepared latest patch).
    pub candidates: HashMap<i64, (String, Arc<Prepared>)>,
    /// Each matched record's stored candidates, as the backend chose them (record index →
    /// the source records it read, each with its score against the record); records without
    /// an entry take theirs from `keyed` and are compared in the plan.
    pub record_candidates: HashMap<usize, Vec<(i64, crate::identity::Scored)>>,
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
    /// Made by this batch (`patient.created`).
    pub new: bool,
    /// The golden record as JSON, written by [`settle`].
    pub profile: String,
    /// The stored golden record with the batch's statements absorbed: what matching in the
    /// rest of the batch saw, and the profile kept should no source record be found.
    pub interim: ProfilePatch,
    pub created_at: String,
    pub updated_at: String,
}

pub struct SourceRecordRow {
    pub id: i64,
    pub source_system: String,
    pub source_key: String,
    pub person_id: String,
    /// What the source states now: its earlier statement with this batch's laid over it
    /// ([`settle`] completes it for records already stored, and writes `patch`).
    pub state: ProfilePatch,
    /// `state` as JSON, once settled.
    pub patch: String,
    /// The record was stored before this batch.
    pub stored: bool,
    pub last_message_id: i64,
    pub at: String,
    /// How the record came to its person (`identifier`, `match`, `review`, `new`); kept from
    /// its first message when the record already existed.
    pub link_method: &'static str,
    pub link_score: Option<f64>,
    /// The score breakdown of a match, JSON.
    pub link_detail: Option<String>,
}

/// A possible duplicate for a human: the new person a record made, and whom it resembles.
pub struct ReviewRow {
    pub person_id: String,
    pub candidate_id: String,
    pub message_id: i64,
    pub score: f64,
    pub breakdown: String,
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

/// What a batch adds to a connector's counters (a reprocessed message subtracts from the
/// count of its old status); `last_message_at` only for messages received.
#[derive(Default)]
pub struct Counters {
    pub received: i64,
    pub processed: i64,
    pub errors: i64,
    pub duplicates: i64,
    pub unmapped: i64,
    pub last_message_at: Option<String>,
}

impl Counters {
    fn add(&mut self, status: MessageStatus, n: i64) {
        match status {
            MessageStatus::Processed => self.processed += n,
            MessageStatus::Error => self.errors += n,
            MessageStatus::Duplicate => self.duplicates += n,
            MessageStatus::Unmapped => self.unmapped += n,
            MessageStatus::Received => {}
        }
    }
}

/// Every row a batch writes, and what each record became.
#[derive(Default)]
pub struct Plan<'a> {
    pub applied: Vec<Applied>,
    pub messages: Vec<MessageRow<'a>>,
    pub persons: Vec<PersonRow>,
    pub source_records: Vec<SourceRecordRow>,
    pub identifiers: Vec<IdentifierRow>,
    /// (blocking key, source record id) pairs to index.
    pub match_keys: Vec<(i64, i64)>,
    /// With matching on, every source record up to this id has its keys indexed.
    pub keys_through: Option<i64>,
    pub reviews: Vec<ReviewRow>,
    pub clinical: Vec<ClinicalRow>,
    /// Resources their source deleted.
    pub deletions: Vec<DeletionRow>,
    /// Pull cursors to store, the latest per connector and resource type.
    pub cursors: Vec<crate::store::CursorUpdate>,
    pub counters: Vec<(String, Counters)>,
}

/// Decides, record by record, what the batch writes.
pub fn plan<'a>(
    records: &'a [NewRecord],
    mut l: Lookups,
    inputs: &[Option<Arc<MatchInput>>],
    matcher: &Matcher,
) -> Result<Plan<'a>, serde_json::Error> {
    let mut plan = Plan::default();
    // Source records written earlier in this batch, as candidates for the later records:
    // (keys, person id, index of the record whose input they are).
    let mut batch_keyed = BatchKeys::default();
    let mut keys_added: HashSet<(i64, i64)> = HashSet::new();
    let mut next_source = l.next_source_record_id;
    // Persons touched by this batch, in first-touch order, with their created_at when new.
    let mut dirty: Vec<(String, Option<String>, String)> = Vec::new();
    // Source records touched: (system, key) → index in plan.source_records.
    let mut sources: HashMap<(String, String), usize> = HashMap::new();
    let mut identifiers_added: HashSet<(String, String)> = HashSet::new();
    // (kind, source system, key) → index in plan.clinical.
    let mut clinical_at: HashMap<(&'static str, String, String), usize> = HashMap::new();
    let mut counters: Vec<(String, Counters)> = Vec::new();

    let mut next_message_id = l.next_message_id;
    for (index, r) in records.iter().enumerate() {
        // A reprocessed message keeps its row and id; a new one takes the next free id.
        let id = match r.reprocess {
            Some(again) => again.id,
            None => {
                next_message_id += 1;
                next_message_id - 1
            }
        };
        let input = inputs.get(index).and_then(Option::as_ref);
        let key = r
            .control_id
            .as_ref()
            .map(|c| (r.sender.clone(), c.clone(), r.content_hash.clone()));
        let earlier = match (&r.disposition, &key) {
            (Disposition::Error { .. }, _) | (_, None) => None,
            (_, Some(k)) => l
                .accepted
                .get(k)
                .filter(|_| {
                    l.latest
                        .get(&(k.0.clone(), k.1.clone()))
                        .is_none_or(|(_, hash)| *hash == k.2)
                })
                // A reprocessed message is no duplicate of itself.
                .filter(|(first, _)| Some(*first) != r.reprocess.map(|again| again.id))
                .cloned(),
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
        let mut placed: Option<&'static str> = None;
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
                Disposition::Delete { resource } => {
                    plan.deletions.push(DeletionRow {
                        sender: r.sender.clone().unwrap_or_default(),
                        resource: resource.clone(),
                        message_id: id,
                        at: r.received_at.clone(),
                    });
                }
                Disposition::Apply {
                    mapping,
                    source_system,
                    patch,
                    records,
                    warnings,
                    ..
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
                        // No known identifier: compare with the persons that look alike.
                        let link = match (&found, input) {
                            (None, Some(input)) => {
                                Some(match_one(index, input, &l, &batch_keyed, inputs, matcher)?)
                            }
                            _ => None,
                        };
                        let (method, score, detail) = match (&found, &link) {
                            (Some(_), _) => ("identifier", None, None),
                            (None, Some(m)) => (m.method, m.score, m.detail.clone()),
                            (None, None) => ("new", None, None),
                        };
                        placed = Some(method);
                        let linked_to = found.or_else(|| link.as_ref().and_then(|m| m.person.clone()));
                        let person_id = match linked_to {
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
                        if let Some(MatchLink {
                            review: Some(candidate),
                            score: Some(score),
                            detail: Some(detail),
                            ..
                        }) = &link
                        {
                            plan.reviews.push(ReviewRow {
                                person_id: person_id.clone(),
                                candidate_id: candidate.clone(),
                                message_id: id,
                                score: *score,
                                breakdown: detail.clone(),
                                at: r.received_at.clone(),
                            });
                        }
                        if let Some(d) = dirty.iter_mut().find(|(d, _, _)| *d == person_id) {
                            d.2 = r.received_at.clone();
                        }
                        let skey = (source_system.clone(), source_key(r, p));
                        let source_id = match sources.get(&skey) {
                            Some(&i) => {
                                let s = &mut plan.source_records[i];
                                s.state.overlay(p);
                                s.last_message_id = id;
                                s.at = r.received_at.clone();
                                s.id
                            }
                            None => {
                                let stored = l.source_records.get(&skey).copied();
                                let sid = match stored {
                                    Some(sid) => sid,
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
                                    state: p.clone(),
                                    patch: String::new(),
                                    stored: stored.is_some(),
                                    last_message_id: id,
                                    at: r.received_at.clone(),
                                    link_method: method,
                                    link_score: score,
                                    link_detail: detail,
                                });
                                sid
                            }
                        };
                        if let Some(input) = input {
                            for &k in &input.keys {
                                if keys_added.insert((k, source_id)) {
                                    plan.match_keys.push((k, source_id));
                                }
                            }
                            batch_keyed.add(index, source_id, &input.keys, &person_id);
                        }
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
                    // A record's key is the patient's (their source record's) and then the
                    // record's own: a visit number, an order number or a diagnosis code of one
                    // patient never names another patient's record, even when a sender reuses
                    // numbers across the clinics it serves.
                    let patient = patch.as_ref().map(|p| source_key(r, p));
                    for (n, record) in records.iter().enumerate() {
                        let key = match (record.key(), &patient) {
                            (Some(k), Some(p)) => format!("{p}#{k}"),
                            (Some(k), None) => format!("#{k}"),
                            (None, _) => format!("msg|{id}|{n}"),
                        };
                        let clinical = ClinicalRow {
                            kind: record.kind().as_str(),
                            source_system: source_system.clone(),
                            key,
                            person_id: row.person_id.clone(),
                            status: record.status(),
                            at: record.at().map(|w| w.as_str().to_string()),
                            sort_at: record.at().map(crate::model::When::sort_key),
                            code: record.code().map(|c| {
                                format!(
                                    "{}|{}",
                                    c.system.as_deref().unwrap_or(""),
                                    c.code.as_deref().unwrap_or("")
                                )
                            }),
                            data: serde_json::to_string(&record.storage_json())?,
                            message_id: id,
                            received_at: r.received_at.clone(),
                        };
                        // A later message of the batch about the same record replaces it here too.
                        let at = (
                            clinical.kind,
                            clinical.source_system.clone(),
                            clinical.key.clone(),
                        );
                        match clinical_at.get(&at).map(|&i| &mut plan.clinical[i]) {
                            Some(earlier) => {
                                // As the store does: the newer values over the older ones.
                                let data = merge_json(&earlier.data, &clinical.data)?;
                                let first = (earlier.person_id.take(), earlier.status, earlier.at.take());
                                let (sort_at, code) = (earlier.sort_at.take(), earlier.code.take());
                                *earlier = ClinicalRow {
                                    person_id: clinical.person_id.or(first.0),
                                    status: clinical.status.or(first.1),
                                    at: clinical.at.or(first.2),
                                    sort_at: clinical.sort_at.or(sort_at),
                                    code: clinical.code.or(code),
                                    data,
                                    ..clinical
                                };
                            }
                            None => {
                                clinical_at.insert(at, plan.clinical.len());
                                plan.clinical.push(clinical);
                            }
                        }
                    }
                }
            }
            if let Some(k) = key
                && matches!(row.status, MessageStatus::Processed | MessageStatus::Unmapped)
            {
                l.latest.insert((k.0.clone(), k.1.clone()), (id, k.2.clone()));
                l.accepted.entry(k).or_insert((id, row.person_id.clone()));
            }
        }

        let c = match counters.iter_mut().position(|(n, _)| *n == r.connector) {
            Some(i) => &mut counters[i].1,
            None => {
                counters.push((r.connector.clone(), Counters::default()));
                &mut counters.last_mut().expect("just pushed").1
            }
        };
        match r.reprocess {
            // Read again, not received again: the message moves from its old status's count.
            Some(again) => c.add(again.previous, -1),
            None => {
                c.received += 1;
                c.last_message_at = Some(r.received_at.clone());
            }
        }
        c.add(row.status, 1);
        if let Some(c) = &r.cursor {
            match plan
                .cursors
                .iter_mut()
                .find(|o| o.connector == c.connector && o.resource_type == c.resource_type)
            {
                Some(o) => o.value.clone_from(&c.value),
                None => plan.cursors.push(c.clone()),
            }
        }
        plan.applied.push(Applied {
            message_id: id,
            status: row.status,
            person_id: row.person_id.clone(),
            link: placed,
        });
        plan.messages.push(row);
    }

    for (id, created, updated) in dirty {
        plan.persons.push(PersonRow {
            new: created.is_some(),
            created_at: created.unwrap_or_else(|| updated.clone()),
            interim: l.profiles.remove(&id).unwrap_or_default(),
            id,
            // Derived from the person's source records by `settle`.
            profile: String::new(),
            updated_at: updated,
        });
    }
    plan.counters = counters;
    if matcher.matching {
        plan.keys_through = plan.source_records.iter().map(|s| s.id).max();
    }
    Ok(plan)
}

/// A stored source record, as survivorship reads it.
#[derive(Debug)]
pub struct StoredSource {
    pub id: i64,
    pub person_id: String,
    pub system: String,
    pub at: String,
    pub message_id: i64,
    pub patch: ProfilePatch,
}

/// What the backend must read before [`settle`]: every source record of the stored persons
/// the batch touches (their golden records are derived again), and the stored records the
/// batch updates (their new statement is laid over the old). Nothing for new persons.
pub fn stored_needed(plan: &Plan<'_>) -> (Vec<String>, Vec<i64>) {
    let persons = plan
        .persons
        .iter()
        .filter(|p| !p.new)
        .map(|p| p.id.clone())
        .collect();
    let sources = plan
        .source_records
        .iter()
        .filter(|s| s.stored)
        .map(|s| s.id)
        .collect();
    (persons, sources)
}

/// Completes a plan with what was stored: each updated source record's state (the earlier
/// statement with the batch's over it), then each touched person's golden record, derived
/// from all its source records by the survivorship rules.
pub fn settle(
    plan: &mut Plan<'_>,
    stored: &[StoredSource],
    survivorship: &Survivorship,
) -> Result<(), serde_json::Error> {
    let by_id: HashMap<i64, &StoredSource> = stored.iter().map(|s| (s.id, s)).collect();
    for row in &mut plan.source_records {
        if let Some(old) = by_id.get(&row.id).filter(|_| row.stored) {
            let mut state = old.patch.clone();
            state.overlay(&row.state);
            row.state = state;
            // A stored record stays with its person (the write never moves it).
            row.person_id.clone_from(&old.person_id);
        }
        row.patch = serde_json::to_string(&row.state)?;
    }
    let in_batch: HashSet<i64> = plan.source_records.iter().map(|s| s.id).collect();
    let mut rows_of: HashMap<&str, Vec<SourceState<'_>>> = HashMap::new();
    for s in stored.iter().filter(|s| !in_batch.contains(&s.id)) {
        rows_of.entry(&s.person_id).or_default().push(SourceState {
            record_id: s.id,
            system: &s.system,
            at: &s.at,
            message_id: s.message_id,
            patch: &s.patch,
        });
    }
    for s in &plan.source_records {
        rows_of.entry(&s.person_id).or_default().push(SourceState {
            record_id: s.id,
            system: &s.source_system,
            at: &s.at,
            message_id: s.last_message_id,
            patch: &s.state,
        });
    }
    for person in &mut plan.persons {
        person.profile = match rows_of.get(person.id.as_str()) {
            Some(states) => serde_json::to_string(&survivorship.golden(states))?,
            None => serde_json::to_string(&person.interim)?,
        };
    }
    Ok(())
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
