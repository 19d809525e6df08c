//! What a reprocess did (or, in a dry run, would do): counts by outcome, and by connector,
//! type and the status before and after. Counts and names only: no patient data.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::store::{MessageStatus, StoredMessage};

/// Statuses after a reprocess (dry run: what the mapping would make of them; a duplicate is
/// only known when written, and a dry run counts it as processed).
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Outcomes {
    pub processed: u64,
    pub error: u64,
    pub unmapped: u64,
    pub duplicate: u64,
}

/// Messages chosen but not read again.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// Retention emptied their bodies.
    pub body_pruned: u64,
    /// FHIR documents kept whole (not split into resources when they came).
    pub fhir_document: u64,
}

/// One line of the breakdown.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Line {
    pub connector: String,
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub before: &'static str,
    pub after: &'static str,
    pub count: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// Messages the selection chose.
    pub selected: u64,
    /// Read again (chosen, not skipped).
    pub reprocessed: u64,
    /// Whose status changed (or would).
    pub changed: u64,
    pub outcomes: Outcomes,
    pub skipped: Skipped,
    /// By connector, type, status before and after.
    pub by: Vec<Line>,
    #[serde(skip)]
    lines: BTreeMap<(String, Option<String>, &'static str, &'static str), u64>,
}

impl Report {
    pub fn new(dry_run: bool) -> Report {
        Report {
            dry_run,
            selected: 0,
            reprocessed: 0,
            changed: 0,
            outcomes: Outcomes::default(),
            skipped: Skipped::default(),
            by: Vec::new(),
            lines: BTreeMap::new(),
        }
    }

    /// One message read again, and what it became.
    pub(super) fn count(&mut self, m: &StoredMessage, after: MessageStatus) {
        self.reprocessed += 1;
        if after != m.status {
            self.changed += 1;
        }
        match after {
            MessageStatus::Processed => self.outcomes.processed += 1,
            MessageStatus::Error => self.outcomes.error += 1,
            MessageStatus::Unmapped => self.outcomes.unmapped += 1,
            MessageStatus::Duplicate => self.outcomes.duplicate += 1,
            MessageStatus::Received => {}
        }
        let key = (
            m.connector.clone(),
            m.message_type.clone(),
            m.status.as_str(),
            after.as_str(),
        );
        *self.lines.entry(key).or_default() += 1;
    }

    /// Writes the breakdown (`by`) from the counts.
    pub(super) fn finish(&mut self) {
        self.by = self
            .lines
            .iter()
            .map(|((connector, t, before, after), count)| Line {
                connector: connector.clone(),
                message_type: t.clone(),
                before,
                after,
                count: *count,
            })
            .collect();
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would become" } else { "became" };
        writeln!(
            f,
            "{} of {} selected messages {}: {} processed, {} error, {} unmapped, {} duplicate ({} changed status)",
            self.reprocessed,
            self.selected,
            if self.dry_run {
                "read (dry run, nothing written)"
            } else {
                "reprocessed"
            },
            self.outcomes.processed,
            self.outcomes.error,
            self.outcomes.unmapped,
            self.outcomes.duplicate,
            self.changed
        )?;
        if self.skipped.body_pruned + self.skipped.fhir_document > 0 {
            writeln!(
                f,
                "skipped: {} with their body pruned, {} FHIR documents kept whole",
                self.skipped.body_pruned, self.skipped.fhir_document
            )?;
        }
        for l in &self.by {
            writeln!(
                f,
                "  {:<16} {:<12} {:>9} {verb} {:<9} {:>8}",
                l.connector,
                l.message_type.as_deref().unwrap_or("-"),
                l.before,
                l.after,
                l.count
            )?;
        }
        Ok(())
    }
}
