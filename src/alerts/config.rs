//! `config/alerts.yaml`: which conditions page ops, and through which channels.
//!
//! The serde shape and the pure checks only (every problem as `file:line: field: problem`);
//! the file is optional. Imports nothing of the rooms it watches: the connector and channel
//! names to check against are handed in.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Document, Problem};

/// The alerts file.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertsConfig {
    /// How often every replica evaluates the alerts from the store.
    #[serde(default = "default_evaluate_every_secs")]
    pub evaluate_every_secs: u64,
    /// Least time between two messages about one alert (a fire after a resolve within it waits).
    #[serde(default = "default_cooldown_mins")]
    pub cooldown_mins: u64,
    /// Where alert messages go: a channel of `channels:` in carehub.yaml and the address on it
    /// (an e-mail address, a Telegram chat id, anything for a webhook or file channel).
    #[serde(default)]
    pub send_to: Vec<Recipient>,
    /// The alerts, by name (the name is the message's title and the API's key).
    #[serde(default)]
    pub alerts: BTreeMap<String, AlertRule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            evaluate_every_secs: default_evaluate_every_secs(),
            cooldown_mins: default_cooldown_mins(),
            send_to: Vec::new(),
            alerts: BTreeMap::new(),
        }
    }
}

fn default_evaluate_every_secs() -> u64 {
    60
}
fn default_cooldown_mins() -> u64 {
    30
}

/// One destination of alert messages.
#[derive(Debug, Clone, Deserialize)]
pub struct Recipient {
    /// A channel name from carehub.yaml `channels:`.
    pub channel: String,
    /// The address on that channel.
    pub to: String,
}

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A connector (or every enabled one) is stopped, failed or degraded.
    ConnectorDown,
    /// No message for `minutes` within `hours` on `weekdays` (the clinic's time zone).
    NoMessages,
    /// Errors over `percent` of the messages of the last `window_mins`.
    ErrorRate,
    /// The outbox or the queue holds a notification older than `minutes`.
    Backlog,
    /// More than `over` possible duplicates wait for review.
    ReviewQueue,
    /// A FHIR pull connector's latest run failed.
    FhirPullFailing,
    /// The data folder's free space is under `min_free_percent`.
    DiskSpace,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ConnectorDown => "connector_down",
            AlertKind::NoMessages => "no_messages",
            AlertKind::ErrorRate => "error_rate",
            AlertKind::Backlog => "backlog",
            AlertKind::ReviewQueue => "review_queue",
            AlertKind::FhirPullFailing => "fhir_pull_failing",
            AlertKind::DiskSpace => "disk_space",
        }
    }

    /// The keys this kind needs, and those it may take (besides `kind` and `cooldown_mins`).
    fn fields(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            AlertKind::ConnectorDown => (&[], &["connector"]),
            AlertKind::NoMessages => (&["connector", "minutes"], &["hours", "weekdays"]),
            AlertKind::ErrorRate => (&["percent"], &["connector", "window_mins", "min_messages"]),
            AlertKind::Backlog => (&["of", "minutes"], &[]),
            AlertKind::ReviewQueue => (&["over"], &[]),
            AlertKind::FhirPullFailing => (&[], &["connector"]),
            AlertKind::DiskSpace => (&["min_free_percent"], &["path"]),
        }
    }
}

/// Which backlog an alert of kind `backlog` watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backlog {
    /// Notifications due and not yet handed to the queue.
    Outbox,
    /// Notifications handed to the queue and not yet sent.
    Queue,
}

/// Clock times of the day, `HH:MM`, in the clinic's time zone; `end` before `start` spans midnight.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    pub start: String,
    pub end: String,
}

/// One alert. Which keys apply depends on `kind` (docs/configuration.md#alerts).
#[derive(Debug, Clone, Deserialize)]
pub struct AlertRule {
    pub kind: AlertKind,
    /// The connector watched (`connector_down`, `fhir_pull_failing`, `error_rate`: every
    /// enabled one when left out).
    pub connector: Option<String>,
    /// `no_messages`: minutes of silence; `backlog`: minutes the oldest notification waited.
    pub minutes: Option<u64>,
    /// `no_messages`: only within these hours (default: all day).
    pub hours: Option<Hours>,
    /// `no_messages`: only on these days (`mon` … `sun`; default: every day).
    pub weekdays: Option<Vec<String>>,
    /// `error_rate`: the share of errors, in percent, above which it fires.
    pub percent: Option<f64>,
    /// `error_rate`: the window, in minutes (default 15).
    pub window_mins: Option<u64>,
    /// `error_rate`: fewer messages than this in the window never fire (default 10).
    pub min_messages: Option<u64>,
    /// `backlog`: `outbox` or `queue`.
    pub of: Option<Backlog>,
    /// `review_queue`: fires above this many open items.
    pub over: Option<u64>,
    /// `disk_space`: the folder whose file system is watched (default: the SQLite store's
    /// folder, else `data`).
    pub path: Option<String>,
    /// `disk_space`: fires under this share of free space, in percent.
    pub min_free_percent: Option<f64>,
    /// This alert's own cool-down, in minutes (default: the file's `cooldown_mins`).
    pub cooldown_mins: Option<u64>,
}

impl AlertRule {
    /// The keys set on this rule, by name.
    fn set_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        let mut add = |name, set: bool| {
            if set {
                f.push(name)
            }
        };
        add("connector", self.connector.is_some());
        add("minutes", self.minutes.is_some());
        add("hours", self.hours.is_some());
        add("weekdays", self.weekdays.is_some());
        add("percent", self.percent.is_some());
        add("window_mins", self.window_mins.is_some());
        add("min_messages", self.min_messages.is_some());
        add("of", self.of.is_some());
        add("over", self.over.is_some());
        add("path", self.path.is_some());
        add("min_free_percent", self.min_free_percent.is_some());
        f
    }
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl AlertsConfig {
    /// Loads the alerts file; `Ok(None)` when there is none.
    pub fn load(
        path: &std::path::Path,
        connectors: &[String],
        channels: &[String],
    ) -> Result<Option<AlertsConfig>, Vec<Problem>> {
        if !path.exists() {
            return Ok(None);
        }
        let mut problems = Vec::new();
        let Some(doc) = crate::config::read_document(path, &mut problems) else {
            return Err(problems);
        };
        let (config, mut problems) = doc.deserialize::<AlertsConfig>();
        if let Some(c) = &config {
            problems.extend(c.check(&doc, connectors, channels));
        }
        match config {
            Some(c) if problems.is_empty() => Ok(Some(c)),
            _ => Err(problems),
        }
    }

    /// What serde cannot check: the keys each kind needs, names that must exist, ranges.
    pub fn check(&self, doc: &Document, connectors: &[String], channels: &[String]) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.evaluate_every_secs == 0 {
            p.push(doc.problem("evaluate_every_secs", "must be at least 1"));
        }
        if !self.alerts.is_empty() && self.send_to.is_empty() {
            p.push(doc.problem(
                "send_to",
                "alerts need somewhere to go: a list of {channel, to} (channels from carehub.yaml)",
            ));
        }
        for (i, r) in self.send_to.iter().enumerate() {
            if !channels.contains(&r.channel) {
                p.push(doc.problem(
                    &format!("send_to.{i}.channel"),
                    format!(
                        "no channel named {} in carehub.yaml (known: {})",
                        r.channel,
                        list(channels)
                    ),
                ));
            }
            if r.to.trim().is_empty() {
                p.push(doc.problem(&format!("send_to.{i}.to"), "an address is needed"));
            }
        }
        for (name, rule) in &self.alerts {
            let at = |field: &str| format!("alerts.{name}.{field}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                p.push(doc.problem(
                    &format!("alerts.{name}"),
                    "an alert name uses letters, digits, - and _ only",
                ));
            }
            let (needed, optional) = rule.kind.fields();
            let set = rule.set_fields();
            for field in needed {
                if !set.contains(field) {
                    p.push(doc.problem(
                        &at("kind"),
                        format!("{field}: needed with kind: {}", rule.kind.as_str()),
                    ));
                }
            }
            for field in &set {
                if !needed.contains(field) && !optional.contains(field) {
                    p.push(doc.problem(
                        &at(field),
                        format!("does not apply to kind: {}", rule.kind.as_str()),
                    ));
                }
            }
            if let Some(c) = &rule.connector
                && !connectors.contains(c)
            {
                p.push(doc.problem(
                    &at("connector"),
                    format!("no connector named {c} (known: {})", list(connectors)),
                ));
            }
            if let Some(h) = &rule.hours {
                for (field, value) in [("start", &h.start), ("end", &h.end)] {
                    if let Err(e) = crate::rules::parse_clock(value) {
                        p.push(doc.problem(&at(&format!("hours.{field}")), e));
                    }
                }
            }
            for d in rule.weekdays.iter().flatten() {
                if !WEEKDAYS.contains(&d.to_ascii_lowercase().as_str()) {
                    p.push(doc.problem(
                        &at("weekdays"),
                        format!("{d:?} is not one of {}", WEEKDAYS.join(", ")),
                    ));
                }
            }
            for (field, value) in [
                ("percent", rule.percent),
                ("min_free_percent", rule.min_free_percent),
            ] {
                if let Some(v) = value
                    && !(v > 0.0 && v < 100.0)
                {
                    p.push(doc.problem(&at(field), format!("a percentage between 0 and 100, got {v}")));
                }
            }
            for (field, value) in [("minutes", rule.minutes), ("window_mins", rule.window_mins)] {
                if value == Some(0) {
                    p.push(doc.problem(&at(field), "must be at least 1"));
                }
            }
        }
        p
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let doc = Document::parse("config/alerts.yaml", yaml).unwrap();
        let (c, mut p) = doc.deserialize::<AlertsConfig>();
        if let Some(c) = c {
            p.extend(c.check(&doc, &["lab".into(), "emr".into()], &["ops_mail".into()]));
        }
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_file_has_no_problem() {
        let yaml = "send_to:\n  - {channel: ops_mail, to: ops@clinic.example}\nalerts:\n  lab-silent:\n    kind: no_messages\n    connector: lab\n    minutes: 30\n    hours: {start: \"08:00\", end: \"18:00\"}\n    weekdays: [mon, tue, wed, thu, fri]\n  errors:\n    kind: error_rate\n    percent: 5\n  backlog:\n    kind: backlog\n    of: outbox\n    minutes: 10\n  disk:\n    kind: disk_space\n    min_free_percent: 10\n";
        assert_eq!(problems(yaml), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let yaml = "send_to:\n  - {channel: pager, to: x}\nalerts:\n  lab-silent:\n    kind: no_messages\n    connector: radiology\n    hours: {start: \"8h\", end: \"18:00\"}\n    weekdays: [monday]\n  errors:\n    kind: error_rate\n    percent: 150\n    over: 3\n  typo:\n    kind: disk_full\n";
        let p = problems(yaml);
        let expect = [
            "config/alerts.yaml:2: send_to.0.channel: no channel named pager in carehub.yaml (known: ops_mail)",
            "config/alerts.yaml:5: alerts.lab-silent.kind: minutes: needed with kind: no_messages",
            "config/alerts.yaml:6: alerts.lab-silent.connector: no connector named radiology (known: lab, emr)",
            "alerts.lab-silent.hours.start: expected a time of day HH:MM",
            "config/alerts.yaml:8: alerts.lab-silent.weekdays: \"monday\" is not one of mon, tue, wed, thu, fri, sat, sun",
            "alerts.errors.percent: a percentage between 0 and 100, got 150",
            "config/alerts.yaml:12: alerts.errors.over: does not apply to kind: error_rate",
        ];
        // serde stops at the first type error (the unknown kind), so the checks see no value;
        // without it, every other problem shows.
        assert!(
            p.iter()
                .any(|l| l.contains("alerts.typo.kind") && l.contains("disk_full")),
            "{p:#?}"
        );
        let without_typo = problems(&yaml.replace("  typo:\n    kind: disk_full\n", ""));
        for e in expect {
            assert!(
                without_typo.iter().any(|l| l.contains(e)),
                "missing {e:?} in {without_typo:#?}"
            );
        }
    }

    #[test]
    fn alerts_without_a_destination_are_a_problem() {
        let p = problems("alerts:\n  r:\n    kind: review_queue\n    over: 10\n");
        assert!(p.iter().any(|l| l.contains("send_to")), "{p:?}");
    }
}
