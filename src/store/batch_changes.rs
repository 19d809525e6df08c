//! The change events of a batch (`batch.rs`) for the clinic systems that subscribe to changes
//! (`crate::subscriptions`): a patient created, a patient whose golden record changed, a
//! clinical record written. Pure; the backend reads the stored golden records of the batch's
//! persons before it overwrites them ([`persons_to_compare`]) and writes these rows in the
//! batch's own transaction, so a change is announced exactly when it commits.

use std::collections::HashMap;

use super::Plan;
use crate::store::ChangeRow;

/// The batch's persons that existed before it: their stored golden records decide whether
/// the batch changed them.
pub fn persons_to_compare(plan: &Plan<'_>) -> Vec<String> {
    plan.persons
        .iter()
        .filter(|p| !p.new)
        .map(|p| p.id.clone())
        .collect()
}

/// The change events of a planned (and settled) batch. `stored` maps a person's id to its
/// golden record as stored before the batch (JSON).
pub fn changes(plan: &Plan<'_>, stored: &HashMap<String, String>, at: &str) -> Vec<ChangeRow> {
    let mut out = Vec::new();
    for p in &plan.persons {
        let event = if p.new {
            "patient.created"
        } else if stored.get(&p.id) != Some(&p.profile) {
            "patient.updated"
        } else {
            continue;
        };
        out.push(ChangeRow::new(event, &p.id, at));
    }
    for c in &plan.clinical {
        let Some(person) = &c.person_id else { continue };
        out.push(ChangeRow {
            record_kind: Some(c.kind.to_string()),
            record_system: Some(c.source_system.clone()),
            record_key: Some(c.key.clone()),
            ..ChangeRow::new("record.changed", person, at)
        });
    }
    out
}
