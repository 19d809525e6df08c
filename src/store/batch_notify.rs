//! The outbox rows of a batch (`batch.rs`): the events its clinical records and new persons
//! make, turned into notifications and stops by the rules, to be written in the batch's own
//! transaction. Pure; the backend reads the stored records first ([`watched`]) and writes
//! the rows after the batch's own.

use std::collections::HashMap;

use super::Plan;
use crate::rules::{Event, NotificationRow, Prior, RuleSet, StopRow, detect};

/// (kind, source system, record key).
pub type PriorKey = (String, String, String);

/// The stored records the rules need to see before the batch overwrites them.
pub fn watched(plan: &Plan<'_>, rules: &RuleSet) -> Vec<PriorKey> {
    if rules.rules.is_empty() {
        return Vec::new();
    }
    plan.clinical
        .iter()
        .filter(|c| c.person_id.is_some() && rules.watches(c.kind))
        .map(|c| (c.kind.to_string(), c.source_system.clone(), c.key.clone()))
        .collect()
}

/// The batch's events, and what the rules make of them.
pub fn outbox(
    plan: &Plan<'_>,
    priors: &HashMap<PriorKey, Prior>,
    rules: &RuleSet,
    now: jiff::Timestamp,
) -> Result<(Vec<NotificationRow>, Vec<StopRow>), serde_json::Error> {
    if rules.rules.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut events = Vec::new();
    if rules.watches_new_persons() {
        for p in plan.persons.iter().filter(|p| p.new) {
            events.push(Event {
                name: crate::rules::EventName::PatientCreated,
                person_id: p.id.clone(),
                subject: None,
                code: None,
                record: serde_json::Value::Null,
                sort_at: None,
            });
        }
    }
    for c in &plan.clinical {
        let Some(person) = &c.person_id else { continue };
        if !rules.watches(c.kind) {
            continue;
        }
        let key = (c.kind.to_string(), c.source_system.clone(), c.key.clone());
        let prior = priors.get(&key);
        let Some(name) = detect(c.kind, c.status, c.sort_at.as_deref(), prior) else {
            continue;
        };
        events.push(Event {
            name,
            person_id: person.clone(),
            subject: Some(format!("{}|{}|{}", c.kind, c.source_system, c.key)),
            code: c.code.clone(),
            record: serde_json::from_str(&c.data)?,
            sort_at: c
                .sort_at
                .clone()
                .or_else(|| prior.and_then(|p| p.sort_at.clone())),
        });
    }
    Ok(rules.on_events(&events, now))
}
