//! `config/rules/*.yaml`: one notification rule per file, read and checked in the pure pass of
//! configuration loading (every problem reported as `file:line: field: problem`).

use std::path::Path;

use serde::Deserialize;

use crate::config::{Document, Problem};

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; it names the rule in reports, de-duplication keys and stop conditions.
    pub name: String,
    /// A disabled rule is loaded and checked, and creates nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `transactional` (care: reminders, results) or `marketing` (needs an opt-in).
    pub category: Category,
    /// What makes a notification: an event, or a time relative to a fact.
    pub trigger: TriggerConfig,
    /// Who gets it (every condition must hold; absent ones always hold).
    #[serde(default)]
    pub segment: SegmentConfig,
    /// Channel names in order of preference; the next is tried when a contact is missing, the
    /// patient opted out of a channel, or the provider refused the send for good.
    pub channels: Vec<String>,
    /// Template name: files `<templates_dir>/<template>.<lang>.txt`.
    pub template: String,
    /// What makes two notifications of this rule the same one (sent once): `subject` (the
    /// appointment, the order, the visit — the default), `person` (once per person ever),
    /// `day` (once per person and day) or `year`.
    #[serde(default)]
    pub dedupe: Option<Dedupe>,
    /// At most `max` sends of this rule to one person per `per` (e.g. `{max: 1, per: 7d}`).
    #[serde(default)]
    pub cap: Option<CapConfig>,
    /// Events that cancel this rule's pending sends to the same person (for the same subject
    /// when the event is about the same kind of record, e.g. a cancellation stops the
    /// reminders of that appointment).
    #[serde(default)]
    pub stop_on: Vec<StopConfig>,
    /// Whether the clinic's quiet hours hold this rule's sends back (default true). A booking
    /// confirmation answers what the patient just did and may go at once.
    #[serde(default = "yes")]
    pub quiet_hours: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Transactional,
    Marketing,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Transactional => "transactional",
            Category::Marketing => "marketing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dedupe {
    Subject,
    Person,
    Day,
    Year,
}

/// The events the store emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum EventName {
    #[serde(rename = "patient.created")]
    PatientCreated,
    #[serde(rename = "appointment.booked")]
    AppointmentBooked,
    #[serde(rename = "appointment.cancelled")]
    AppointmentCancelled,
    #[serde(rename = "appointment.rescheduled")]
    AppointmentRescheduled,
    #[serde(rename = "appointment.noshow")]
    AppointmentNoShow,
    #[serde(rename = "lab_result.final")]
    LabResultFinal,
    #[serde(rename = "encounter.discharged")]
    EncounterDischarged,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PatientCreated => "patient.created",
            EventName::AppointmentBooked => "appointment.booked",
            EventName::AppointmentCancelled => "appointment.cancelled",
            EventName::AppointmentRescheduled => "appointment.rescheduled",
            EventName::AppointmentNoShow => "appointment.noshow",
            EventName::LabResultFinal => "lab_result.final",
            EventName::EncounterDischarged => "encounter.discharged",
        }
    }

    /// The kind of record the event is about (`None` for a person event).
    pub fn record_kind(self) -> Option<&'static str> {
        match self {
            EventName::PatientCreated => None,
            EventName::AppointmentBooked
            | EventName::AppointmentCancelled
            | EventName::AppointmentRescheduled
            | EventName::AppointmentNoShow => Some("appointment"),
            EventName::LabResultFinal => Some("result"),
            EventName::EncounterDischarged => Some("encounter"),
        }
    }
}

/// `trigger:` — exactly one of `event`, `before`, `birthday`, `recall`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// Fire when this event happens.
    #[serde(default)]
    pub event: Option<EventName>,
    /// Fire `offset` before this time of a record: `appointment.start`.
    #[serde(default)]
    pub before: Option<String>,
    /// With `before`: how long before (`24h`, `2h`, `30m`, `3d`).
    #[serde(default)]
    pub offset: Option<String>,
    /// With `before`: how late a send may still go out after its moment (default half the
    /// offset): an appointment booked 20 hours ahead still gets its 24-hour reminder, one
    /// booked 2 hours ahead does not.
    #[serde(default)]
    pub window: Option<String>,
    /// Fire on the person's birthday.
    #[serde(default)]
    pub birthday: Option<bool>,
    /// Fire when the person's last visit is between `from` and `to` ago.
    #[serde(default)]
    pub recall: Option<RecallConfig>,
    /// Local time of day (clinic time zone) at which scheduled rules send: `09:00`.
    #[serde(default)]
    pub at: Option<String>,
    /// Cron expression for checking scheduled rules (default every 5 minutes).
    #[serde(default)]
    pub schedule: Option<String>,
    /// With `event`: only records whose code starts with one of these (`21636-0`,
    /// `http://loinc.org|21636`).
    #[serde(default)]
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallConfig {
    /// Earliest: this long after the last visit (`3 months`).
    pub from: String,
    /// Latest: this long after the last visit (`6 months`).
    pub to: String,
    /// No recall while the person has an appointment booked in the future (default true).
    #[serde(default = "yes")]
    pub unless_booked: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    #[serde(default)]
    pub age: Option<AgeRange>,
    /// `female`, `male`, `other`, `unknown`.
    #[serde(default)]
    pub sex: Vec<String>,
    /// Language codes (`vi`, `ru`, `zh`, `en`).
    #[serde(default)]
    pub language: Vec<String>,
    /// Diagnosis code prefixes (`E11`, `http://hl7.org/fhir/sid/icd-10|E11`).
    #[serde(default)]
    pub diagnosis: Vec<String>,
    /// Last visit within a window (`{within: 12 months}` or `{from: 3 months, to: 6 months}`).
    #[serde(default)]
    pub last_visit: Option<VisitWindow>,
    /// Tags set on the person's preferences; every listed tag must be present.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRange {
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitWindow {
    #[serde(default)]
    pub within: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    pub max: u32,
    /// A duration: `7d`, `30d`, `1 month`.
    pub per: String,
}

/// `stop_on:` entries: an event name, or `{event, codes}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopConfig {
    Event(EventName),
    Filtered {
        event: EventName,
        #[serde(default)]
        codes: Vec<String>,
    },
}

impl StopConfig {
    pub fn event(&self) -> EventName {
        match self {
            StopConfig::Event(e) | StopConfig::Filtered { event: e, .. } => *e,
        }
    }
    pub fn codes(&self) -> &[String] {
        match self {
            StopConfig::Event(_) => &[],
            StopConfig::Filtered { codes, .. } => codes,
        }
    }
}

/// A length of time as rules write it: `90s`, `30m`, `24h`, `7d`, `2w`, `3 months`, `1 year`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Seconds(i64),
    Months(i64),
}

impl Span {
    pub fn parse(text: &str) -> Result<Span, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let n: i64 = n
            .parse()
            .map_err(|_| format!("expected a number and a unit (24h, 7d, 3 months), got {text:?}"))?;
        let secs = |k: i64| Ok(Span::Seconds(n * k));
        match unit.trim().to_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => secs(1),
            "m" | "min" | "mins" | "minute" | "minutes" => secs(60),
            "h" | "hour" | "hours" => secs(3600),
            "d" | "day" | "days" => secs(86_400),
            "w" | "week" | "weeks" => secs(7 * 86_400),
            "mo" | "month" | "months" => Ok(Span::Months(n)),
            "y" | "year" | "years" => Ok(Span::Months(12 * n)),
            other => Err(format!(
                "unknown unit {other:?} in {text:?} (use s, m, h, d, w, months, years)"
            )),
        }
    }

    /// `at` moved back by this span, in the clinic's time zone (months are calendar months).
    pub fn before(self, at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> jiff::Timestamp {
        match self {
            Span::Seconds(s) => at - jiff::SignedDuration::from_secs(s),
            Span::Months(m) => at
                .to_zoned(tz.clone())
                .checked_sub(jiff::Span::new().months(m))
                .map(|z| z.timestamp())
                .unwrap_or(at),
        }
    }

    /// Roughly, in seconds (for defaults and caps).
    pub fn approx_secs(self) -> i64 {
        match self {
            Span::Seconds(s) => s,
            Span::Months(m) => m * 30 * 86_400,
        }
    }
}

/// `HH:MM` → minutes after midnight.
pub fn parse_clock(text: &str) -> Result<u32, String> {
    let bad = || format!("expected a time of day HH:MM, got {text:?}");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

const BEFORE_FIELDS: &[&str] = &["appointment.start"];

impl RuleConfig {
    /// Checks what serde cannot: one trigger kind, durations, clocks, the cron expression.
    pub fn check(
        &self,
        doc: &Document,
        channels: &[String],
        templates: &dyn Fn(&str) -> bool,
    ) -> Vec<Problem> {
        let mut p = Vec::new();
        let t = &self.trigger;
        let kinds = [
            t.event.is_some(),
            t.before.is_some(),
            t.birthday == Some(true),
            t.recall.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => p.push(doc.problem("trigger", "needs one of event, before, birthday, recall")),
            _ => p.push(doc.problem("trigger", "give only one of event, before, birthday, recall")),
        }
        if let Some(before) = &t.before {
            if !BEFORE_FIELDS.contains(&before.as_str()) {
                p.push(doc.problem(
                    "trigger.before",
                    format!("unknown time {before:?} (known: {})", BEFORE_FIELDS.join(", ")),
                ));
            }
            match &t.offset {
                None => p.push(doc.problem("trigger.offset", "needed with before (e.g. 24h)")),
                Some(o) => check_span(doc, "trigger.offset", o, &mut p),
            }
        } else if t.offset.is_some() {
            p.push(doc.problem("trigger.offset", "only with before"));
        }
        if let Some(w) = &t.window {
            check_span(doc, "trigger.window", w, &mut p);
        }
        if let Some(r) = &t.recall {
            check_span(doc, "trigger.recall.from", &r.from, &mut p);
            check_span(doc, "trigger.recall.to", &r.to, &mut p);
            if let (Ok(a), Ok(b)) = (Span::parse(&r.from), Span::parse(&r.to))
                && a.approx_secs() >= b.approx_secs()
            {
                p.push(doc.problem("trigger.recall", "from must be shorter than to"));
            }
        }
        if let Some(at) = &t.at
            && let Err(e) = parse_clock(at)
        {
            p.push(doc.problem("trigger.at", e));
        }
        if let Some(s) = &t.schedule {
            if t.event.is_some() {
                p.push(doc.problem("trigger.schedule", "an event rule is not scheduled"));
            } else if let Err(e) = crate::sources::fhir::schedule::parse(s) {
                p.push(doc.problem("trigger.schedule", e));
            }
        }
        if !t.codes.is_empty() && t.event.is_none() {
            p.push(doc.problem("trigger.codes", "only with event"));
        }
        if self.name.trim().is_empty() || self.name.contains(['|', '/', ' ']) {
            p.push(doc.problem(
                "name",
                "a name without spaces, | or / (e.g. appointment-reminder-24h)",
            ));
        }
        if let Some(a) = &self.segment.age
            && let (Some(min), Some(max)) = (a.min, a.max)
            && min > max
        {
            p.push(doc.problem("segment.age", "min is above max"));
        }
        for s in &self.segment.sex {
            if !matches!(s.as_str(), "female" | "male" | "other" | "unknown") {
                p.push(doc.problem(
                    "segment.sex",
                    format!("{s:?} is not one of female, male, other, unknown"),
                ));
            }
        }
        if let Some(v) = &self.segment.last_visit {
            for (field, value) in [("within", &v.within), ("from", &v.from), ("to", &v.to)] {
                if let Some(value) = value {
                    check_span(doc, &format!("segment.last_visit.{field}"), value, &mut p);
                }
            }
            if v.within.is_none() && v.from.is_none() && v.to.is_none() {
                p.push(doc.problem("segment.last_visit", "give within, or from and/or to"));
            }
        }
        if let Some(c) = &self.cap {
            check_span(doc, "cap.per", &c.per, &mut p);
            if c.max == 0 {
                p.push(doc.problem("cap.max", "0 would never send; disable the rule instead"));
            }
        }
        if self.channels.is_empty() {
            p.push(doc.problem("channels", "name at least one channel"));
        }
        for c in &self.channels {
            if !channels.contains(c) {
                p.push(doc.problem(
                    "channels",
                    format!(
                        "no channel named {c} in carehub.yaml (known: {})",
                        if channels.is_empty() {
                            "none".to_string()
                        } else {
                            channels.join(", ")
                        }
                    ),
                ));
            }
        }
        if !templates(&self.template) {
            p.push(doc.problem(
                "template",
                format!("no template {}.<lang>.txt in the templates folder", self.template),
            ));
        }
        if self.trigger.event == Some(EventName::PatientCreated) && self.dedupe == Some(Dedupe::Subject) {
            p.push(doc.problem("dedupe", "patient.created has no subject; use person"));
        }
        p
    }
}

fn check_span(doc: &Document, field: &str, text: &str, p: &mut Vec<Problem>) {
    match Span::parse(text) {
        Ok(s) if s.approx_secs() <= 0 => p.push(doc.problem(field, "must be longer than zero")),
        Ok(_) => {}
        Err(e) => p.push(doc.problem(field, e)),
    }
}

/// Reads every rule file of a folder (`*.yaml`); a missing folder means no rules.
pub fn load_dir(
    dir: &Path,
    channels: &[String],
    templates: &dyn Fn(&str) -> bool,
    problems: &mut Vec<Problem>,
) -> Vec<RuleConfig> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut rules: Vec<RuleConfig> = Vec::new();
    for file in crate::config::yaml_files(dir, problems) {
        let Some(doc) = crate::config::read_document(&file, problems) else {
            continue;
        };
        let (rule, found) = doc.deserialize::<RuleConfig>();
        problems.extend(found);
        if let Some(rule) = rule {
            problems.extend(rule.check(&doc, channels, templates));
            if rules.iter().any(|r| r.name == rule.name) {
                problems.push(doc.problem("name", format!("rule {} is defined twice", rule.name)));
            }
            rules.push(rule);
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Vec<String> {
        let doc = Document::parse("config/rules/r.yaml", yaml).unwrap();
        let (rule, mut problems) = doc.deserialize::<RuleConfig>();
        if let Some(rule) = rule {
            problems.extend(rule.check(&doc, &["sms".into(), "email".into()], &|t| t == "reminder"));
        }
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(Span::parse("24h"), Ok(Span::Seconds(86_400)));
        assert_eq!(Span::parse("3 months"), Ok(Span::Months(3)));
        assert_eq!(Span::parse("1 year"), Ok(Span::Months(12)));
        assert_eq!(Span::parse("30m"), Ok(Span::Seconds(1800)));
        assert!(Span::parse("soon").is_err());
        assert!(Span::parse("3 fortnights").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_clock("09:30"), Ok(570));
        assert!(parse_clock("25:00").is_err());
    }

    #[test]
    fn a_valid_rule_has_no_problem() {
        let ok = "name: r\ncategory: transactional\ntrigger: {before: appointment.start, offset: 24h}\nchannels: [sms, email]\ntemplate: reminder\nstop_on: [appointment.cancelled, {event: lab_result.final, codes: ['21636']}]\n";
        assert_eq!(check(ok), Vec::<String>::new());
    }

    #[test]
    fn every_problem_of_a_rule_is_reported_with_its_line() {
        let bad = "name: r\ncategory: transactional\ntrigger:\n  event: appointment.booked\n  birthday: true\n  schedule: '0 9 * * *'\nchannels: [sms, fax]\ntemplate: nothing\ncap: {max: 0, per: 7 fortnights}\n";
        let p = check(bad);
        let joined = p.join("\n");
        assert!(joined.contains("r.yaml:3: trigger: give only one of"), "{joined}");
        assert!(
            joined.contains("r.yaml:6: trigger.schedule: an event rule is not scheduled"),
            "{joined}"
        );
        assert!(joined.contains("no channel named fax"), "{joined}");
        assert!(joined.contains("template: no template nothing"), "{joined}");
        assert!(joined.contains("cap.per: unknown unit"), "{joined}");
        assert!(joined.contains("cap.max: 0 would never send"), "{joined}");
    }

    #[test]
    fn an_unknown_event_lists_nothing_silently() {
        let p = check(
            "name: r\ncategory: transactional\ntrigger: {event: appointment.booké}\nchannels: [sms]\ntemplate: reminder\n",
        );
        assert!(p.iter().any(|l| l.contains("trigger.event")), "{p:?}");
    }
}
