//! Notification rules: which change or which moment makes which notification, for whom, by
//! which channels — and which events stop a journey.
//!
//! Pure: the store hands [`RuleSet::on_events`] the events of a batch inside its transaction
//! and writes the notifications it returns in that same transaction (the outbox); the
//! scheduler (`delivery::schedule`) asks [`RuleSet::scheduled`] for the time-based rules. What
//! needs the latest facts — consent, quiet hours, segment, caps — is checked by the relay when
//! a notification falls due (`delivery::relay`), so a send always reflects the patient's
//! current wishes, not those of the day it was planned.

mod config;
mod events;

pub use config::*;
pub use events::{Event, Prior, detect};

use std::collections::HashSet;

use serde_json::json;

/// A notification to write into the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRow {
    pub id: String,
    pub rule: String,
    pub category: &'static str,
    pub person_id: String,
    pub subject: Option<String>,
    pub dedupe_key: String,
    pub template: String,
    /// JSON array of channel names.
    pub channels: String,
    /// JSON object the template reads.
    pub context: String,
    /// The event or schedule that made it.
    pub cause: String,
    /// Epoch milliseconds.
    pub due_at: i64,
    pub created_at: String,
}

/// Pending sends of a rule to cancel: an event arrived that ends the journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRow {
    pub rule: String,
    pub person_id: String,
    /// Only the sends about this subject (when the event is about the rule's own kind of record).
    pub subject: Option<String>,
    pub reason: String,
}

/// A rule, checked and ready.
#[derive(Debug, Clone)]
pub struct Rule {
    pub config: RuleConfig,
    pub cap: Option<(u32, Span)>,
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Every enabled rule, with the clinic's time zone.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub timezone: jiff::tz::TimeZone,
    /// Whether ingest writes change events for subscribers (`crate::subscriptions`).
    pub changes: ChangeFeed,
}

/// Whether some clinic system subscribes to changes: ingest then writes a change event per
/// patient and record it changes, in the change's own transaction. Shared by every clone of a
/// rule set; the subscription relay turns it on and off as subscriptions come and go.
#[derive(Debug, Clone, Default)]
pub struct ChangeFeed(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl ChangeFeed {
    pub fn on(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set(&self, on: bool) {
        self.0.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: Vec::new(),
            timezone: jiff::tz::TimeZone::UTC,
            changes: ChangeFeed::default(),
        }
    }
}

impl RuleSet {
    /// Builds from checked configurations (disabled rules are left out).
    pub fn new(configs: &[RuleConfig], timezone: jiff::tz::TimeZone) -> RuleSet {
        let rules = configs
            .iter()
            .filter(|c| c.enabled)
            .map(|c| Rule {
                cap: c
                    .cap
                    .as_ref()
                    .and_then(|cap| Span::parse(&cap.per).ok().map(|per| (cap.max, per))),
                config: c.clone(),
            })
            .collect();
        RuleSet {
            rules,
            timezone,
            changes: ChangeFeed::default(),
        }
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name() == name)
    }

    /// Whether any rule reacts to changes of this kind of record (the writer reads the stored
    /// record first only then).
    pub fn watches(&self, kind: &str) -> bool {
        self.rules.iter().any(|r| {
            r.config.trigger.event.and_then(EventName::record_kind) == Some(kind)
                || r.config
                    .stop_on
                    .iter()
                    .any(|s| s.event().record_kind() == Some(kind))
        })
    }

    /// Whether any rule reacts to new persons.
    pub fn watches_new_persons(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.config.trigger.event == Some(EventName::PatientCreated))
    }

    /// The notifications and cancellations a batch's events make. `now` is epoch milliseconds.
    pub fn on_events(&self, events: &[Event], now: jiff::Timestamp) -> (Vec<NotificationRow>, Vec<StopRow>) {
        let mut rows = Vec::new();
        let mut stops = Vec::new();
        let mut keys = HashSet::new();
        for event in events {
            for rule in &self.rules {
                let c = &rule.config;
                for stop in c.stop_on.iter().filter(|s| s.event() == event.name) {
                    if !codes_match(stop.codes(), event.code.as_deref()) {
                        continue;
                    }
                    let own_kind = event.name.record_kind().is_some()
                        && event.name.record_kind() == c.trigger.event.and_then(EventName::record_kind)
                        || (event.name.record_kind() == Some("appointment")
                            && c.trigger.before.as_deref() == Some("appointment.start"));
                    stops.push(StopRow {
                        rule: c.name.clone(),
                        person_id: event.person_id.clone(),
                        subject: if own_kind { event.subject.clone() } else { None },
                        reason: format!("stopped by {}", event.name.as_str()),
                    });
                }
                if c.trigger.event != Some(event.name)
                    || !codes_match(&c.trigger.codes, event.code.as_deref())
                {
                    continue;
                }
                // A confirmation or a cancellation notice about a past appointment helps nobody.
                if event.name.record_kind() == Some("appointment")
                    && event.name != EventName::AppointmentNoShow
                    && let Some(at) = event.sort_at.as_deref().and_then(parse_sort_key)
                    && at < now
                {
                    continue;
                }
                let subject = event_subject(event);
                let mut dedupe =
                    self.dedupe_key(rule, &event.person_id, subject.as_deref(), &event.record, now);
                // A booking cancelled and made again is a new booking to confirm: an
                // appointment event is a transition, which happens once per message that makes it.
                if event.name.record_kind() == Some("appointment")
                    && c.dedupe.is_none_or(|d| d == Dedupe::Subject)
                {
                    dedupe.push_str(&format!("|{}", now.as_millisecond()));
                }
                if !keys.insert(dedupe.clone()) {
                    continue;
                }
                rows.push(self.row(
                    rule,
                    &event.person_id,
                    subject,
                    dedupe,
                    json!({"event": event.name.as_str(), "record": event.record}),
                    event.name.as_str().to_string(),
                    now,
                    now,
                ));
            }
        }
        (rows, stops)
    }

    /// The de-duplication key of a rule's notification.
    pub fn dedupe_key(
        &self,
        rule: &Rule,
        person: &str,
        subject: Option<&str>,
        record: &serde_json::Value,
        now: jiff::Timestamp,
    ) -> String {
        let c = &rule.config;
        let default = match (c.trigger.event, c.trigger.birthday, &c.trigger.recall) {
            (Some(EventName::PatientCreated), _, _) => Dedupe::Person,
            (_, Some(true), _) => Dedupe::Year,
            _ => Dedupe::Subject,
        };
        let local = now.to_zoned(self.timezone.clone());
        match c.dedupe.unwrap_or(default) {
            Dedupe::Subject => {
                // An appointment moved to another time is another appointment to remind of
                // (the instant in UTC: `+07:00` from HL7 and `Z` from FHIR are the same time).
                let start = record
                    .get("start")
                    .and_then(|s| s.as_str())
                    .map(|s| {
                        crate::model::When::try_from(s.to_string()).map_or(s.to_string(), |w| w.sort_key())
                    })
                    .unwrap_or_default();
                format!("{}|{person}|{}|{start}", c.name, subject.unwrap_or(""))
            }
            Dedupe::Person => format!("{}|{person}", c.name),
            Dedupe::Day => format!("{}|{person}|{}", c.name, local.date()),
            Dedupe::Year => format!("{}|{person}|{}", c.name, local.year()),
        }
    }

    /// A notification row of `rule` for `person`, due at `due`.
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &self,
        rule: &Rule,
        person: &str,
        subject: Option<String>,
        dedupe_key: String,
        context: serde_json::Value,
        cause: String,
        due: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> NotificationRow {
        let c = &rule.config;
        NotificationRow {
            id: uuid::Uuid::now_v7().to_string(),
            rule: c.name.clone(),
            category: c.category.as_str(),
            person_id: person.to_string(),
            subject,
            dedupe_key,
            template: c.template.clone(),
            channels: serde_json::to_string(&c.channels).unwrap_or_else(|_| "[]".into()),
            context: context.to_string(),
            cause,
            due_at: due.as_millisecond(),
            created_at: now.to_string(),
        }
    }
}

/// The subject a notification about an event is filed under: a lab result's order (one notice
/// for the ten results of a panel), otherwise the record itself.
fn event_subject(event: &Event) -> Option<String> {
    if event.name == EventName::LabResultFinal
        && let Some(order) = event.record.get("order_id").and_then(|o| o.as_str())
        && let Some(subject) = &event.subject
    {
        let system = subject.split('|').nth(1).unwrap_or("");
        return Some(format!("order|{system}|{order}"));
    }
    event.subject.clone()
}

/// Whether a record's `system|code` starts with one of the prefixes (a prefix without `|`
/// compares with the code alone). No prefixes: every code matches.
pub fn codes_match(prefixes: &[String], code: Option<&str>) -> bool {
    if prefixes.is_empty() {
        return true;
    }
    let Some(code) = code else { return false };
    let bare = code.split_once('|').map_or(code, |(_, c)| c);
    prefixes.iter().any(|p| {
        if p.contains('|') {
            code.starts_with(p.as_str())
        } else {
            bare.starts_with(p.as_str())
        }
    })
}

/// A clinical record's sort key (`When::sort_key`: UTC, RFC 3339-like, possibly date-only) as
/// an instant; a date alone counts as its start.
pub fn parse_sort_key(key: &str) -> Option<jiff::Timestamp> {
    if let Ok(ts) = key.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    let date: jiff::civil::Date = key.get(..10)?.parse().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &[&str]) -> RuleSet {
        let configs: Vec<RuleConfig> = yaml
            .iter()
            .map(|y| {
                let doc = crate::config::Document::parse("r.yaml", y).unwrap();
                doc.deserialize::<RuleConfig>().0.unwrap()
            })
            .collect();
        RuleSet::new(&configs, jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
    }

    fn event(name: EventName, subject: &str, record: serde_json::Value, sort_at: Option<&str>) -> Event {
        Event {
            name,
            person_id: "p1".into(),
            subject: Some(subject.into()),
            code: record.get("code").and_then(|c| c.as_str()).map(str::to_string),
            record,
            sort_at: sort_at.map(str::to_string),
        }
    }

    const CONFIRM: &str = "name: confirm\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [sms]\ntemplate: t\n";
    const REMIND: &str = "name: remind\ncategory: transactional\ntrigger: {before: appointment.start, offset: 24h}\nchannels: [sms]\ntemplate: t\nstop_on: [appointment.cancelled]\n";
    const BRCA: &str = "name: book-brca\ncategory: transactional\ntrigger: {recall: {from: 1 month, to: 12 months}}\nchannels: [sms]\ntemplate: t\nstop_on: [{event: lab_result.final, codes: ['21636']}]\n";

    #[test]
    fn a_booking_makes_one_confirmation_and_a_cancellation_stops_the_reminders_of_that_appointment() {
        let set = rules(&[CONFIRM, REMIND]);
        let now: jiff::Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        let booked = event(
            EventName::AppointmentBooked,
            "appointment|SCHED|p#A1",
            json!({"start": "2026-11-25T09:00:00+07:00"}),
            Some("2026-11-25T02:00:00Z"),
        );
        let (rows, stops) = set.on_events(&[booked.clone(), booked.clone()], now);
        assert_eq!(rows.len(), 1, "the same booking twice in a batch confirms once");
        assert_eq!(rows[0].rule, "confirm");
        assert!(stops.is_empty());

        let cancelled = event(
            EventName::AppointmentCancelled,
            "appointment|SCHED|p#A1",
            json!({}),
            None,
        );
        let (rows, stops) = set.on_events(&[cancelled], now);
        assert!(rows.is_empty());
        assert_eq!(
            stops,
            vec![StopRow {
                rule: "remind".into(),
                person_id: "p1".into(),
                subject: Some("appointment|SCHED|p#A1".into()),
                reason: "stopped by appointment.cancelled".into()
            }]
        );
    }

    #[test]
    fn no_confirmation_for_an_appointment_already_past() {
        let set = rules(&[CONFIRM]);
        let now: jiff::Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
        let booked = event(
            EventName::AppointmentBooked,
            "a",
            json!({}),
            Some("2026-11-25T02:00:00Z"),
        );
        assert!(set.on_events(&[booked], now).0.is_empty());
    }

    #[test]
    fn a_result_stops_the_journey_only_for_its_codes() {
        let set = rules(&[BRCA]);
        let now = jiff::Timestamp::now();
        let other = event(
            EventName::LabResultFinal,
            "r1",
            json!({"code": "http://loinc.org|2345-7"}),
            None,
        );
        assert!(set.on_events(&[other], now).1.is_empty());
        let brca = event(
            EventName::LabResultFinal,
            "r2",
            json!({"code": "http://loinc.org|21636-0"}),
            None,
        );
        let stops = set.on_events(&[brca], now).1;
        assert_eq!(stops.len(), 1);
        assert_eq!(
            stops[0].subject, None,
            "a result ends the person's recall journey"
        );
    }

    #[test]
    fn codes_compare_with_or_without_their_system() {
        assert!(codes_match(
            &["E11".into()],
            Some("http://hl7.org/fhir/sid/icd-10|E11.9")
        ));
        assert!(!codes_match(&["E11".into()], Some("icd|E10")));
        assert!(codes_match(&["icd|E1".into()], Some("icd|E10")));
        assert!(!codes_match(&["x|E1".into()], Some("icd|E10")));
        assert!(codes_match(&[], None));
    }
}
