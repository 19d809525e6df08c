//! Shadow replay: what a changed mapping would make of the messages the hub already holds.
//!
//! `carehub replay --mapping NEW.yaml` walks the message log oldest first, one page at a time,
//! reads each message the way the pipeline read it (`pipeline::read_hl7`, in its connector's
//! default charset), maps it with the mapping the hub uses today (the *baseline*) and with
//! NEW, and counts what differs, field by field ([`diff`]) and message by message (mapped,
//! error, unmapped). It only reads the store: nothing is written, no person changes, nothing
//! is sent. Values are patient data: the [`Report`] keeps them only when asked to.
//!
//! The baseline for a message is the configured mapping of NEW's name when the hub would give
//! it that message (its types cover the message, or the connector is fixed to it); otherwise
//! the mapping the hub picks for the message, or none (the message is unmapped today).

pub mod diff;
mod report;

use std::collections::HashMap;

use serde_json::Value;

use crate::hl7::MessageType;
use crate::mapping::{Input, Mapping, MappingSet, fhir_resources};
use crate::pipeline::{ConnectorContext, read_hl7};
use crate::store::{MessageScan, MessageStatus, Store, StoreError, StoredMessage, TypeFilter};

pub use report::{Examples, FieldCounts, Report, State, ValuePair};

/// Rows read from the store per page.
const PAGE_ROWS: i64 = 200;

/// Longest value shown (in characters) with `--show-values`.
const VALUE_CHARS: usize = 80;

/// What to replay and how much to keep.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Only messages received at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// Only messages of this connector.
    pub connector: Option<String>,
    /// Message ids kept per changed field and per error.
    pub examples: usize,
    /// Keep the values before and after with each example (patient data).
    pub show_values: bool,
}

/// A replay of one new mapping against the configured ones.
pub struct Replay<'a> {
    new: &'a Mapping,
    configured: &'a MappingSet,
    /// How each configured connector reads and maps its messages, by name.
    contexts: HashMap<String, ConnectorContext>,
    /// For messages of connectors no longer configured: the hub's defaults.
    fallback: ConnectorContext,
    options: ReplayOptions,
}

/// What a mapping made of one message.
enum Outcome {
    Mapped(Value),
    Error(String),
    Unmapped,
}

impl Outcome {
    fn of(
        mapping: Option<&Mapping>,
        apply: impl Fn(&Mapping) -> Result<crate::mapping::MappingOutput, crate::mapping::MappingError>,
    ) -> Outcome {
        match mapping.map(apply) {
            None => Outcome::Unmapped,
            Some(Ok(out)) => Outcome::Mapped(out.to_json()),
            Some(Err(e)) => Outcome::Error(e.to_string()),
        }
    }

    fn state(&self) -> State {
        match self {
            Outcome::Mapped(_) => State::Mapped,
            Outcome::Error(_) => State::Error,
            Outcome::Unmapped => State::Unmapped,
        }
    }
}

impl<'a> Replay<'a> {
    pub fn new(
        new: &'a Mapping,
        configured: &'a MappingSet,
        contexts: Vec<ConnectorContext>,
        fallback: ConnectorContext,
        options: ReplayOptions,
    ) -> Replay<'a> {
        Replay {
            new,
            configured,
            contexts: contexts.into_iter().map(|c| (c.name.clone(), c)).collect(),
            fallback,
            options,
        }
    }

    /// Walks the store and compares. Reads only.
    pub async fn run(&self, store: &Store) -> Result<Report, StoreError> {
        let mut report = Report::new(&self.new.name, self.options.show_values);
        let mut scan = MessageScan {
            after_id: 0,
            // Whole seconds, as text: a superset, narrowed exactly below.
            received_from: self
                .options
                .since
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string()),
            received_to: None,
            connector: self.options.connector.clone(),
            types: self.type_filter(),
            statuses: Vec::new(),
            ids: Vec::new(),
            skip_duplicates: true,
            limit: PAGE_ROWS,
        };
        loop {
            let page = store.scan_messages(&scan).await?;
            let Some(last) = page.last() else { break };
            scan.after_id = last.id;
            for message in &page {
                if self.received_before_since(message) {
                    continue;
                }
                report.read += 1;
                self.replay_one(message, &mut report);
            }
        }
        Ok(report)
    }

    /// The message types NEW covers, as a store filter: a superset of what it maps (the exact
    /// choice is made per message). FHIR messages are not filtered by type in the store.
    fn type_filter(&self) -> Option<TypeFilter> {
        if self.new.input != Input::Hl7v2 {
            return None;
        }
        let mut filter = TypeFilter {
            connectors: self.fixed_connectors(),
            ..TypeFilter::default()
        };
        for t in &self.new.message_types {
            match t.strip_suffix("^*") {
                Some(code) => filter.prefixes.push(format!("{code}^")),
                None if t.contains('^') => filter.equal.push(t.clone()),
                None => {
                    filter.equal.push(t.clone());
                    filter.prefixes.push(format!("{t}^"));
                }
            }
        }
        Some(filter)
    }

    /// Connectors that send every message to NEW's name, whatever its type.
    fn fixed_connectors(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .contexts
            .values()
            .filter(|c| c.mapping.as_deref() == Some(self.new.name.as_str()))
            .map(|c| c.name.clone())
            .collect();
        names.sort();
        names
    }

    fn received_before_since(&self, message: &StoredMessage) -> bool {
        let Some(since) = self.options.since else {
            return false;
        };
        // A time that does not read is kept: better one message too many than one missed.
        message
            .received_at
            .parse::<jiff::Timestamp>()
            .is_ok_and(|at| at < since)
    }

    fn context(&self, connector: &str) -> &ConnectorContext {
        self.contexts.get(connector).unwrap_or(&self.fallback)
    }

    fn replay_one(&self, message: &StoredMessage, report: &mut Report) {
        if message.body_pruned_at.is_some() {
            return report.skip(report::SKIP_PRUNED);
        }
        match self.new.input {
            Input::Hl7v2 => self.replay_hl7(message, report),
            Input::Fhir => self.replay_fhir(message, report),
        }
    }

    fn replay_hl7(&self, message: &StoredMessage, report: &mut Report) {
        let ctx = self.context(&message.connector);
        let Ok((msg, _)) = read_hl7(&message.raw, ctx.default_charset) else {
            return report.skip(report::SKIP_UNREADABLE);
        };
        let (Some(mtype), Some(_)) = (msg.message_type(), msg.control_id()) else {
            return report.skip(report::SKIP_REFUSED);
        };
        let fixed_to_new = ctx.mapping.as_deref() == Some(self.new.name.as_str());
        if !fixed_to_new && !self.new.covers_message_type(&mtype) {
            return report.skip(report::SKIP_OTHER_TYPE);
        }
        let baseline = self.hl7_baseline(ctx, &mtype);
        let env = &ctx.transform_env;
        let before = Outcome::of(baseline, |m| m.apply(&msg, env));
        let after = Outcome::of(Some(self.new), |m| m.apply(&msg, env));
        self.record(message, Some(message.status), baseline, before, after, report);
    }

    /// The configured mapping of NEW's name, when the hub gives it this message; else what
    /// the hub picks.
    fn hl7_baseline(&self, ctx: &ConnectorContext, mtype: &MessageType) -> Option<&'a Mapping> {
        let same_name = self.configured.get(&self.new.name).filter(|m| {
            ctx.mapping.as_deref() == Some(m.name.as_str())
                || (ctx.mapping.is_none() && m.covers_message_type(mtype))
        });
        same_name.or_else(|| ctx.choose_mapping(self.configured, mtype))
    }

    /// A stored FHIR message: one resource, a Bundle or NDJSON; each resource NEW maps is
    /// compared on its own.
    fn replay_fhir(&self, message: &StoredMessage, report: &mut Report) {
        let ctx = self.context(&message.connector);
        let resources = std::str::from_utf8(&message.raw)
            .ok()
            .and_then(|text| fhir_resources(text).ok());
        let Some((resources, single)) = resources else {
            return report.skip(report::SKIP_UNREADABLE);
        };
        let covered = |r: &&Value| {
            let rtype = r["resourceType"].as_str().unwrap_or("");
            self.new.resource_types.iter().any(|t| t == rtype)
        };
        let mut any = false;
        for resource in resources.iter().filter(covered) {
            any = true;
            let rtype = resource["resourceType"].as_str().unwrap_or("");
            let baseline = self
                .configured
                .get(&self.new.name)
                .filter(|m| m.resource_types.iter().any(|t| t == rtype))
                .or_else(|| self.configured.for_resource_type(rtype));
            let env = &ctx.transform_env;
            let before = Outcome::of(baseline, |m| m.apply_fhir(resource, env));
            let after = Outcome::of(Some(self.new), |m| m.apply_fhir(resource, env));
            // The stored status speaks for the whole message, so only for a single resource.
            let stored = single.then_some(message.status);
            self.record(message, stored, baseline, before, after, report);
        }
        if !any {
            report.skip(report::SKIP_OTHER_TYPE);
        }
    }

    /// Counts one comparison: its transition, its errors, and its fields when both mapped.
    fn record(
        &self,
        message: &StoredMessage,
        stored: Option<MessageStatus>,
        baseline: Option<&Mapping>,
        before: Outcome,
        after: Outcome,
        report: &mut Report,
    ) {
        let examples = self.options.examples;
        report.compared += 1;
        *report
            .baselines
            .entry(baseline.map(|m| m.name.clone()))
            .or_default() += 1;
        if let Some(stored) = stored {
            let agrees = matches!(
                (stored, before.state()),
                (MessageStatus::Processed, State::Mapped)
                    | (MessageStatus::Error, State::Error)
                    | (MessageStatus::Unmapped, State::Unmapped)
            );
            if !agrees {
                report.stored_disagrees.add(message.id, examples);
            }
        }
        *report
            .transitions
            .entry((before.state(), after.state()))
            .or_default() += 1;
        match (&before, &after) {
            (Outcome::Mapped(old), Outcome::Mapped(new)) => self.compare_fields(message.id, old, new, report),
            (_, Outcome::Error(e)) => report
                .new_errors
                .entry(e.clone())
                .or_default()
                .add(message.id, examples),
            (Outcome::Error(e), Outcome::Mapped(_)) => report
                .fixed_errors
                .entry(e.clone())
                .or_default()
                .add(message.id, examples),
            _ => {}
        }
    }

    fn compare_fields(&self, id: i64, old: &Value, new: &Value, report: &mut Report) {
        // A field that differs in several items of one message gives one example.
        let mut shown: Vec<String> = Vec::new();
        for d in diff::compare(old, new) {
            let counts = report.fields.entry(d.path.clone()).or_default();
            counts.count(d.change);
            if d.change == diff::Change::Unchanged || shown.contains(&d.path) {
                continue;
            }
            shown.push(d.path);
            let values = self.options.show_values.then(|| ValuePair {
                before: d.before.map(shown_value),
                after: d.after.map(shown_value),
            });
            counts.examples.add_with(id, values, self.options.examples);
        }
    }
}

/// A value as printed with `--show-values`: compact JSON, cut to a readable length.
fn shown_value(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(VALUE_CHARS).collect();
    format!("{cut}…")
}

/// Reads `--since`: an RFC 3339 time (`2026-01-20T08:30:00+07:00`), a time without offset
/// (`2026-01-20T08:30:00`, in `tz`), or a date (`2026-01-20`, midnight in `tz`).
pub fn parse_since(text: &str, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let civil = text.parse::<jiff::civil::DateTime>().or_else(|_| {
        text.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    match civil {
        Ok(dt) => dt
            .to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| format!("{text}: {e}")),
        Err(_) => Err(format!(
            "expected an RFC 3339 time (2026-01-20T08:30:00+07:00) or a date (2026-01-20), got \"{text}\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_rfc3339_a_local_time_or_a_date() {
        let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let utc = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            parse_since("2026-01-20T08:30:00+07:00", &tz),
            Ok(utc("2026-01-20T01:30:00Z"))
        );
        assert_eq!(
            parse_since("2026-01-20T08:30:00", &tz),
            Ok(utc("2026-01-20T01:30:00Z"))
        );
        assert_eq!(parse_since("2026-01-20", &tz), Ok(utc("2026-01-19T17:00:00Z")));
        assert!(
            parse_since("yesterday", &tz)
                .unwrap_err()
                .contains("expected an RFC 3339 time")
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = Value::String("x".repeat(200));
        assert!(shown_value(&long).ends_with('…'));
        assert_eq!(shown_value(&Value::String("Le".into())), "\"Le\"");
    }
}
