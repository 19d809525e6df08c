//! Candidates for a record and the comparison with them, for the batch planner: which
//! records to match, their blocking keys and candidates, and what one comparison decides.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Lookups;
use crate::identity::{Decision, MatchInput, Matcher, Prepared, Scored};
use crate::store::types::{Disposition, NewRecord};

/// Each record's match input (its patch prepared for comparison, and its blocking keys), for
/// records that carry a patch — when matching is on.
/// An input its sender prepared ([`NewRecord::prepare_match`]) is taken as it is.
pub fn match_inputs(records: &[NewRecord], matcher: &Matcher) -> Vec<Option<Arc<MatchInput>>> {
    records
        .iter()
        .map(|r| match &r.disposition {
            Disposition::Apply { patch: Some(p), .. } if matcher.matching => Some(
                r.match_input
                    .clone()
                    .unwrap_or_else(|| Arc::new(MatchInput::of(p))),
            ),
            _ => None,
        })
        .collect()
}

/// The records to match: those with a match input none of whose identifiers is known (a
/// known identifier links deterministically, with no need for candidates).
pub fn records_to_match(
    records: &[NewRecord],
    inputs: &[Option<Arc<MatchInput>>],
    l: &Lookups,
) -> Vec<usize> {
    records
        .iter()
        .zip(inputs)
        .enumerate()
        .filter_map(|(i, (r, input))| match (input, &r.disposition) {
            (Some(_), Disposition::Apply { patch: Some(p), .. }) => {
                let known = p
                    .identifiers
                    .iter()
                    .any(|id| l.identifiers.contains_key(&(id.system.clone(), id.value.clone())));
                (!known).then_some(i)
            }
            _ => None,
        })
        .collect()
}

/// The blocking keys of the records to match, each once.
pub fn keys_to_match(records: &[NewRecord], inputs: &[Option<Arc<MatchInput>>], l: &Lookups) -> Vec<i64> {
    let mut seen = HashSet::new();
    records_to_match(records, inputs, l)
        .into_iter()
        .filter_map(|i| inputs[i].as_ref())
        .flat_map(|input| input.keys.iter().copied())
        .filter(|k| seen.insert(*k))
        .collect()
}

/// The stored candidates of one record: the source records under its keys, most selective
/// key first, at most `max_candidates`.
pub fn candidate_ids(input: &MatchInput, l: &Lookups, max_candidates: usize) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::new();
    for key in &input.keys {
        if ids.len() >= max_candidates {
            break;
        }
        for id in l.keyed.get(key).into_iter().flatten() {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
    }
    ids.truncate(max_candidates);
    ids
}

/// The source records planned earlier in this batch, by blocking key, as candidates for the
/// later records. Counted per source record, as the store's `match_keys` are: thirty messages
/// of one patient in a batch are one record under its keys, not thirty.
#[derive(Default)]
pub(super) struct BatchKeys {
    by_key: HashMap<i64, Vec<BatchMember>>,
}

struct BatchMember {
    source_record: i64,
    /// The batch record with its latest patch.
    index: usize,
    person: String,
}

impl BatchKeys {
    /// A record of the batch (`index`), written as `source_record` of `person`, becomes a
    /// candidate under each of its keys; a later message of the same source record replaces
    /// the earlier one there.
    pub(super) fn add(&mut self, index: usize, source_record: i64, keys: &[i64], person: &str) {
        for &key in keys {
            let members = self.by_key.entry(key).or_default();
            match members.iter_mut().find(|m| m.source_record == source_record) {
                Some(m) => {
                    m.index = index;
                    m.person = person.to_string();
                }
                None => members.push(BatchMember {
                    source_record,
                    index,
                    person: person.to_string(),
                }),
            }
        }
    }

    /// The earlier records of the batch sharing a key with `input`, most selective key first,
    /// at most `max_candidates`. A key held by more than `max_block` records, stored and of
    /// this batch together, narrows nothing and is skipped, as the store's look-up skips it:
    /// the first pull of a large server, many namesakes to a page, stays linear.
    fn candidates(&self, input: &MatchInput, l: &Lookups, matcher: &Matcher) -> Vec<(usize, &str)> {
        let mut out: Vec<(usize, &str)> = Vec::new();
        for key in &input.keys {
            if out.len() >= matcher.max_candidates {
                break;
            }
            let Some(members) = self.by_key.get(key) else {
                continue;
            };
            let stored = l.keyed.get(key).map(Vec::as_slice).unwrap_or_default();
            let new = members
                .iter()
                .filter(|m| !stored.contains(&m.source_record))
                .count();
            if l.common_keys.contains(key) || stored.len() + new > matcher.max_block {
                continue;
            }
            for m in members {
                if out.len() < matcher.max_candidates && !out.iter().any(|(o, _)| *o == m.index) {
                    out.push((m.index, &m.person));
                }
            }
        }
        // In arrival order, as before the keys indexed them: equal scores keep the earlier.
        out.sort_by_key(|(i, _)| *i);
        out
    }
}

/// What matching made of one record.
pub(super) struct MatchLink {
    /// `match` (linked to `person`), `review` (a new person; `review` names the look-alike)
    /// or `new`.
    pub(super) method: &'static str,
    pub(super) person: Option<String>,
    pub(super) review: Option<String>,
    pub(super) score: Option<f64>,
    pub(super) detail: Option<String>,
}

/// Compares one record with the stored and batch candidates sharing a key with it.
pub(super) fn match_one(
    index: usize,
    input: &MatchInput,
    l: &Lookups,
    batch: &BatchKeys,
    inputs: &[Option<Arc<MatchInput>>],
    matcher: &Matcher,
) -> Result<MatchLink, serde_json::Error> {
    // The stored candidates (scored by the look-up already, when the backend compared them),
    // then the batch's own.
    let stored: Vec<(i64, Option<Scored>)> = match l.record_candidates.get(&index) {
        Some(scored) => scored.iter().map(|(id, s)| (*id, Some(*s))).collect(),
        None => candidate_ids(input, l, matcher.max_candidates)
            .into_iter()
            .map(|id| (id, None))
            .collect(),
    };
    let mut candidates: Vec<(&str, &Prepared, Option<Scored>)> = stored
        .iter()
        .filter_map(|(id, scored)| {
            let (person, prepared) = l.candidates.get(id)?;
            Some((person.as_str(), &**prepared, *scored))
        })
        .collect();
    for (i, person) in batch.candidates(input, l, matcher) {
        if let Some(Some(other)) = inputs.get(i) {
            candidates.push((person, &other.prepared, None));
        }
    }
    let model = &matcher.model;
    let outcome = model.choose(candidates.iter().enumerate().map(|(i, (_, p, scored))| {
        (
            i,
            scored.unwrap_or_else(|| model.score_candidate(&input.prepared, p)),
        )
    }));
    let Some((best, score)) = outcome.best else {
        return Ok(MatchLink {
            method: "new",
            person: None,
            review: None,
            score: None,
            detail: None,
        });
    };
    let (person, stored, _) = candidates[best];
    let detail = || serde_json::to_string(&matcher.explain(&input.prepared, stored));
    // A link adds to the person's golden record, which must have been read: the backend
    // reads it for every person a look-up already links to. Otherwise (never expected) a
    // human decides, rather than a golden record being rebuilt from one record.
    let decision = match outcome.decision {
        Decision::Link if !l.profiles.contains_key(person) => Decision::Review,
        d => d,
    };
    Ok(match decision {
        Decision::Link => MatchLink {
            method: "match",
            person: Some(person.to_string()),
            review: None,
            score: Some(score),
            detail: Some(detail()?),
        },
        Decision::Review => MatchLink {
            method: "review",
            person: None,
            review: Some(person.to_string()),
            score: Some(score),
            detail: Some(detail()?),
        },
        Decision::New => MatchLink {
            method: "new",
            person: None,
            review: None,
            score: Some(score),
            detail: None,
        },
    })
}
