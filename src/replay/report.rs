//! What a replay found, and how it reads on a terminal.
//!
//! The report holds counts, message ids and error texts (which name a rule and a path, never
//! data). Values are patient data: they are in it only when the replay was asked to keep them.

use std::collections::BTreeMap;
use std::fmt;

use super::diff::Change;

pub(super) const SKIP_UNREADABLE: &str = "unreadable (the hub refused its bytes)";
pub(super) const SKIP_REFUSED: &str = "refused before mapping (no MSH-9 or MSH-10)";
pub(super) const SKIP_PRUNED: &str = "body pruned by the retention policy";
pub(super) const SKIP_OTHER_TYPE: &str = "of a type the new mapping does not take";

/// Where a message ends up under one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Mapped,
    Error,
    /// No mapping takes it.
    Unmapped,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Mapped => "mapped",
            State::Error => "error",
            State::Unmapped => "unmapped",
        })
    }
}

/// A value before and after (compact JSON), kept only with `--show-values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePair {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How many messages had something, and the first few of them.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    pub messages: u64,
    /// Message ids (with values when kept), at most the replay's example limit.
    pub items: Vec<(i64, Option<ValuePair>)>,
}

impl Examples {
    pub(super) fn add(&mut self, id: i64, limit: usize) {
        self.add_with(id, None, limit);
    }

    pub(super) fn add_with(&mut self, id: i64, values: Option<ValuePair>, limit: usize) {
        self.messages += 1;
        if self.items.len() < limit {
            self.items.push((id, values));
        }
    }

    fn ids(&self) -> String {
        let ids: Vec<String> = self.items.iter().map(|(id, _)| id.to_string()).collect();
        ids.join(", ")
    }
}

/// One field path's counts over every message both mappings mapped.
#[derive(Debug, Clone, Default)]
pub struct FieldCounts {
    pub unchanged: u64,
    pub changed: u64,
    pub added: u64,
    pub removed: u64,
    /// The messages where it differs.
    pub examples: Examples,
}

impl FieldCounts {
    pub(super) fn count(&mut self, change: Change) {
        *match change {
            Change::Unchanged => &mut self.unchanged,
            Change::Changed => &mut self.changed,
            Change::Added => &mut self.added,
            Change::Removed => &mut self.removed,
        } += 1;
    }

    pub fn differs(&self) -> bool {
        self.changed + self.added + self.removed > 0
    }
}

/// Everything a replay counted.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The new mapping's name.
    pub mapping: String,
    /// Whether values were kept (`--show-values`).
    pub show_values: bool,
    /// Messages read from the store (duplicates and other connectors or times left out there).
    pub read: u64,
    /// Comparisons made: one per message (one per resource of a FHIR message).
    pub compared: u64,
    /// Messages read but not compared, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// The baseline each comparison used (`None`: no mapping takes the message today).
    pub baselines: BTreeMap<Option<String>, u64>,
    /// (today, with the new mapping) → comparisons.
    pub transitions: BTreeMap<(State, State), u64>,
    /// Errors of the new mapping, by text.
    pub new_errors: BTreeMap<String, Examples>,
    /// Errors of today's mapping that the new one no longer gives, by text.
    pub fixed_errors: BTreeMap<String, Examples>,
    /// Field paths and what became of them where both mapped.
    pub fields: BTreeMap<String, FieldCounts>,
    /// Messages whose stored status is not what today's mapping gives (it changed since).
    pub stored_disagrees: Examples,
}

impl Report {
    pub(super) fn new(mapping: &str, show_values: bool) -> Report {
        Report {
            mapping: mapping.to_string(),
            show_values,
            ..Report::default()
        }
    }

    pub(super) fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// Comparisons that went from `before` to `after`.
    pub fn transition(&self, before: State, after: State) -> u64 {
        self.transitions.get(&(before, after)).copied().unwrap_or(0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "shadow replay of mapping {} (nothing was written)",
            self.mapping
        )?;
        let baselines: Vec<String> = self
            .baselines
            .iter()
            .map(|(name, n)| match name {
                Some(name) => format!("{name} ({n})"),
                None => format!("no mapping ({n})"),
            })
            .collect();
        if !baselines.is_empty() {
            writeln!(
                f,
                "baseline (what the hub maps with today): {}",
                baselines.join(", ")
            )?;
        }
        writeln!(f)?;
        writeln!(f, "messages read      {:>8}", self.read)?;
        writeln!(f, "  compared         {:>8}", self.compared)?;
        for (reason, n) in &self.skipped {
            writeln!(f, "  skipped          {n:>8}  {reason}")?;
        }
        if self.stored_disagrees.messages > 0 {
            writeln!(
                f,
                "  stored status is not what today's mapping gives on {} (the configuration changed since?): {}",
                self.stored_disagrees.messages,
                self.stored_disagrees.ids()
            )?;
        }
        if !self.transitions.is_empty() {
            writeln!(f)?;
            writeln!(f, "{:<28}{:>8}", "today → new mapping", "count")?;
            for ((before, after), n) in &self.transitions {
                writeln!(f, "  {:<26}{n:>8}", format!("{before} → {after}"))?;
            }
        }
        for (title, errors) in [
            ("the new mapping fails", &self.new_errors),
            ("the new mapping now maps what failed with", &self.fixed_errors),
        ] {
            if errors.is_empty() {
                continue;
            }
            writeln!(f)?;
            writeln!(f, "{title}:")?;
            for (error, ex) in errors {
                writeln!(f, "  {:>6}  {error}", ex.messages)?;
                writeln!(f, "          messages: {}", ex.ids())?;
            }
        }
        self.write_fields(f)?;
        writeln!(f)?;
        writeln!(f, "Look a message up with GET /api/v1/messages/{{id}}.")
    }
}

impl Report {
    fn write_fields(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let differing: Vec<(&String, &FieldCounts)> =
            self.fields.iter().filter(|(_, c)| c.differs()).collect();
        writeln!(f)?;
        if differing.is_empty() {
            let both = self.transition(State::Mapped, State::Mapped);
            return writeln!(f, "no field differs on the {both} message(s) both mappings map");
        }
        let width = differing
            .iter()
            .map(|(p, _)| p.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        writeln!(
            f,
            "{:<width$}  {:>8} {:>8} {:>8} {:>10} {:>9}  example messages",
            "field", "changed", "added", "removed", "unchanged", "messages"
        )?;
        for (path, c) in differing {
            writeln!(
                f,
                "{path:<width$}  {:>8} {:>8} {:>8} {:>10} {:>9}  {}",
                c.changed,
                c.added,
                c.removed,
                c.unchanged,
                c.examples.messages,
                c.examples.ids()
            )?;
            for (id, values) in &c.examples.items {
                if let Some(v) = values {
                    let none = || "(none)".to_string();
                    writeln!(
                        f,
                        "    message {id}: {} → {}",
                        v.before.clone().unwrap_or_else(none),
                        v.after.clone().unwrap_or_else(none)
                    )?;
                }
            }
        }
        if !self.show_values {
            writeln!(
                f,
                "(values are patient data and are not shown; --show-values prints them)"
            )?;
        }
        Ok(())
    }
}
