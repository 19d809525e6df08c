//! What each alert says about one moment: the store's state in, findings out (pure).
//!
//! [`evaluate`] turns a [`Snapshot`] (read from the store by every replica alike) into one
//! [`Finding`] per watched instance — firing or not, so that a cleared condition resolves.
//! [`transition`] decides, from an alert's stored row, what changes and which message is owed.
//! Summaries name connectors, counts, shares and folders: never patient data.

use std::collections::{BTreeMap, VecDeque};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::config::{AlertKind, AlertRule, AlertsConfig, Backlog, WEEKDAYS};
use crate::store::AlertRow;

/// A connector as the alerts see it.
#[derive(Debug, Clone)]
pub struct ConnectorView {
    pub name: String,
    pub kind: String,
    /// `running`, `degraded`, `failed`, `stopped`.
    pub state: String,
    /// Messages received and errors so far (the store's counters).
    pub received: i64,
    pub errors: i64,
    /// The last message, else when the connector's row last changed.
    pub last_activity: Option<Timestamp>,
    /// A pull connector's latest run failed, and when it ended.
    pub last_run_failed: Option<Timestamp>,
}

/// Everything the alerts read at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub connectors: Vec<ConnectorView>,
    /// Seconds the oldest due, unqueued notification has waited.
    pub outbox_oldest_secs: Option<f64>,
    /// Seconds the oldest queued, unsent notification has waited.
    pub queue_oldest_secs: Option<f64>,
    pub review_open: i64,
    /// Free space in percent, by watched folder (absent: could not be read).
    pub disk_free_percent: BTreeMap<String, f64>,
}

/// Each connector's (received, errors) counters at one evaluation.
type Counters = BTreeMap<String, (i64, i64)>;

/// Counters seen at earlier evaluations, for rates over a window.
#[derive(Debug, Default)]
pub struct History {
    seen: VecDeque<(Timestamp, Counters)>,
}

impl History {
    /// Remembers the counters of `snapshot` at `now`, forgetting what is older than `keep_secs`
    /// (one sample older than that stays: the baseline of the longest window).
    pub fn record(&mut self, now: Timestamp, snapshot: &Snapshot, keep_secs: i64) {
        let counters = snapshot
            .connectors
            .iter()
            .map(|c| (c.name.clone(), (c.received, c.errors)))
            .collect();
        self.seen.push_back((now, counters));
        while self.seen.len() > 2 && self.seen[1].0.as_second() <= now.as_second() - keep_secs {
            self.seen.pop_front();
        }
    }

    /// The counters of `connector` at the newest sample at least `secs` old, else the oldest.
    fn baseline(&self, connector: &str, now: Timestamp, secs: i64) -> Option<(Timestamp, i64, i64)> {
        let at_or_before = self
            .seen
            .iter()
            .rev()
            .find(|(t, _)| t.as_second() <= now.as_second() - secs)
            .or_else(|| self.seen.front());
        at_or_before
            .filter(|(t, _)| *t < now)
            .and_then(|(t, m)| m.get(connector).map(|(r, e)| (*t, *r, *e)))
    }
}

/// One watched instance of an alert at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `name`, or `name:connector` for one connector of an alert that watches all.
    pub key: String,
    pub name: String,
    pub kind: AlertKind,
    pub firing: bool,
    /// What is wrong (or, when not firing, what was checked).
    pub summary: String,
}

/// Evaluates every alert. `enabled` names the connectors this hub runs (alerts that watch
/// "every connector" watch those).
pub fn evaluate(
    config: &AlertsConfig,
    enabled: &[String],
    snapshot: &Snapshot,
    history: &History,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, rule) in &config.alerts {
        let finding = |key: String, firing: bool, summary: String| Finding {
            key,
            name: name.clone(),
            kind: rule.kind,
            firing,
            summary,
        };
        let watched = |kinds: &[&str]| -> Vec<(String, Option<&ConnectorView>)> {
            match &rule.connector {
                Some(c) => vec![(name.clone(), snapshot.connectors.iter().find(|v| &v.name == c))],
                None => enabled
                    .iter()
                    .filter_map(|c| snapshot.connectors.iter().find(|v| &v.name == c))
                    .filter(|v| kinds.is_empty() || kinds.contains(&v.kind.as_str()))
                    .map(|v| (format!("{name}:{}", v.name), Some(v)))
                    .collect(),
            }
        };
        match rule.kind {
            AlertKind::ConnectorDown => {
                for (key, c) in watched(&[]) {
                    let Some(c) = c else { continue };
                    let down = matches!(c.state.as_str(), "stopped" | "failed" | "degraded");
                    out.push(finding(key, down, format!("connector {} is {}", c.name, c.state)));
                }
            }
            AlertKind::FhirPullFailing => {
                for (key, c) in watched(&["fhir"]) {
                    let Some(c) = c else { continue };
                    let summary = match c.last_run_failed {
                        Some(at) => format!(
                            "the latest run of FHIR pull connector {} failed (at {at})",
                            c.name
                        ),
                        None => format!("the latest run of FHIR pull connector {} did not fail", c.name),
                    };
                    out.push(finding(key, c.last_run_failed.is_some(), summary));
                }
            }
            AlertKind::NoMessages => {
                for (key, c) in watched(&[]) {
                    let Some(c) = c else { continue };
                    let (firing, summary) = silence(rule, c, now, tz);
                    out.push(finding(key, firing, summary));
                }
            }
            AlertKind::ErrorRate => {
                let window = rule.window_mins.unwrap_or(15);
                let least = rule.min_messages.unwrap_or(10);
                let limit = rule.percent.unwrap_or(100.0);
                for (key, c) in watched(&[]) {
                    let Some(c) = c else { continue };
                    let Some((_, r0, e0)) = history.baseline(&c.name, now, window as i64 * 60) else {
                        continue;
                    };
                    let (received, errors) = ((c.received - r0).max(0), (c.errors - e0).max(0));
                    let share = if received > 0 {
                        errors as f64 * 100.0 / received as f64
                    } else {
                        0.0
                    };
                    let firing = received as u64 >= least && share > limit;
                    out.push(finding(
                        key,
                        firing,
                        format!(
                            "connector {}: {errors} errors in {received} messages ({share:.1} %) over the last {window} min (limit {limit} %)",
                            c.name
                        ),
                    ));
                }
            }
            AlertKind::Backlog => {
                let limit = rule.minutes.unwrap_or(u64::MAX);
                let (what, age) = match rule.of {
                    Some(Backlog::Queue) => {
                        ("queue's oldest unsent notification", snapshot.queue_oldest_secs)
                    }
                    _ => ("outbox's oldest due notification", snapshot.outbox_oldest_secs),
                };
                let minutes = age.unwrap_or(0.0) / 60.0;
                out.push(finding(
                    name.clone(),
                    minutes > limit as f64,
                    format!("the {what} has waited {minutes:.0} min (limit {limit} min)"),
                ));
            }
            AlertKind::ReviewQueue => {
                let limit = rule.over.unwrap_or(u64::MAX);
                out.push(finding(
                    name.clone(),
                    snapshot.review_open.max(0) as u64 > limit,
                    format!(
                        "{} possible duplicates wait for review (limit {limit})",
                        snapshot.review_open
                    ),
                ));
            }
            AlertKind::DiskSpace => {
                let limit = rule.min_free_percent.unwrap_or(0.0);
                let path = rule.path.clone().unwrap_or_default();
                if let Some(free) = snapshot.disk_free_percent.get(&path) {
                    out.push(finding(
                        name.clone(),
                        *free < limit,
                        format!("the file system of the data folder has {free:.1} % free (limit {limit} %)"),
                    ));
                }
            }
        }
    }
    out
}

/// `no_messages`: silent for longer than `minutes`, counted from the later of the last
/// message and the start of today's watched hours; only inside those hours and days.
fn silence(rule: &AlertRule, c: &ConnectorView, now: Timestamp, tz: &TimeZone) -> (bool, String) {
    let limit = rule.minutes.unwrap_or(u64::MAX);
    let local = now.to_zoned(tz.clone());
    let minute = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
    // The start of the watched window this moment is in (today's, or yesterday's when the
    // window spans midnight), or None outside it.
    let window_start = match &rule.hours {
        None => Some(local.start_of_day().ok()),
        Some(h) => {
            let (Ok(start), Ok(end)) = (
                crate::rules::parse_clock(&h.start),
                crate::rules::parse_clock(&h.end),
            ) else {
                return (false, String::new());
            };
            let day_ago = |days: i64| {
                local
                    .start_of_day()
                    .ok()
                    .and_then(|d| d.checked_sub(jiff::Span::new().days(days)).ok())
                    .and_then(|d| d.checked_add(jiff::Span::new().minutes(i64::from(start))).ok())
            };
            if start < end {
                (minute >= start && minute < end).then(|| day_ago(0))
            } else if minute >= start {
                Some(day_ago(0))
            } else if minute < end {
                Some(day_ago(1))
            } else {
                None
            }
        }
    };
    let Some(Some(window_start)) = window_start else {
        return (false, format!("connector {}: outside the watched hours", c.name));
    };
    if let Some(days) = &rule.weekdays {
        let day = WEEKDAYS[window_start.weekday().to_monday_zero_offset() as usize];
        if !days.iter().any(|d| d.eq_ignore_ascii_case(day)) {
            return (false, format!("connector {}: not a watched day", c.name));
        }
    }
    let from = match c.last_activity {
        Some(t) if t > window_start.timestamp() => t,
        _ => window_start.timestamp(),
    };
    let silent = (now.as_second() - from.as_second()).max(0) / 60;
    let what = if c.last_activity.is_some_and(|t| t >= from) {
        "no message for"
    } else {
        "no message in the watched hours for"
    };
    (
        silent as u64 > limit,
        format!("connector {}: {what} {silent} min (limit {limit} min)", c.name),
    )
}

/// A message owed to ops about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Firing,
    Resolved,
}

/// What a finding does to its alert's stored row: the new row and the message owed, or
/// `None` when nothing changes. `cooldown_secs` is the least time between two messages.
pub fn transition(
    row: Option<&AlertRow>,
    f: &Finding,
    now: Timestamp,
    cooldown_secs: i64,
) -> Option<(AlertRow, Option<Notice>)> {
    let now_text = now.to_string();
    let cooled = |row: Option<&AlertRow>| {
        row.and_then(|r| r.last_sent_at.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_none_or(|t| now.as_second() - t.as_second() >= cooldown_secs)
    };
    let firing_now = row.is_some_and(|r| r.state == "firing");
    match (f.firing, firing_now) {
        (true, false) => {
            let send = cooled(row);
            Some((
                AlertRow {
                    key: f.key.clone(),
                    name: f.name.clone(),
                    kind: f.kind.as_str().to_string(),
                    state: "firing".into(),
                    summary: f.summary.clone(),
                    fired_at: now_text.clone(),
                    resolved_at: None,
                    last_sent_at: if send {
                        Some(now_text)
                    } else {
                        row.and_then(|r| r.last_sent_at.clone())
                    },
                    announced: send,
                    version: row.map_or(0, |r| r.version),
                },
                send.then_some(Notice::Firing),
            ))
        }
        (true, true) => {
            let row = row?;
            // A firing held back by the cool-down goes out once the cool-down is over.
            if row.announced || !cooled(Some(row)) {
                return None;
            }
            let mut next = row.clone();
            next.summary = f.summary.clone();
            next.announced = true;
            next.last_sent_at = Some(now_text);
            Some((next, Some(Notice::Firing)))
        }
        (false, true) => {
            let row = row?;
            let mut next = row.clone();
            next.state = "resolved".into();
            next.resolved_at = Some(now_text.clone());
            next.announced = false;
            // Only a firing ops heard of is resolved aloud.
            let notice = row.announced.then_some(Notice::Resolved);
            if notice.is_some() {
                next.last_sent_at = Some(now_text);
            }
            Some((next, notice))
        }
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn firing(on: bool) -> Finding {
        Finding {
            key: "down".into(),
            name: "down".into(),
            kind: AlertKind::ConnectorDown,
            firing: on,
            summary: "connector lab is stopped".into(),
        }
    }

    /// Applies transitions as the store would, counting the messages.
    fn run(steps: &[(&str, bool)]) -> Vec<(String, Notice)> {
        let mut row: Option<AlertRow> = None;
        let mut sent = Vec::new();
        for (time, on) in steps {
            if let Some((next, notice)) = transition(row.as_ref(), &firing(*on), at(time), 30 * 60) {
                if let Some(n) = notice {
                    sent.push((time.to_string(), n));
                }
                row = Some(next);
            }
        }
        sent
    }

    #[test]
    fn an_alert_fires_once_resolves_once_and_cools_down_before_firing_again() {
        let sent = run(&[
            ("2026-12-07T08:00:00Z", true),
            ("2026-12-07T08:01:00Z", true),
            ("2026-12-07T08:05:00Z", false),
            ("2026-12-07T08:06:00Z", false),
            // Flaps back within the cool-down: held back…
            ("2026-12-07T08:10:00Z", true),
            ("2026-12-07T08:20:00Z", true),
            // …and sent once the cool-down after the last message is over.
            ("2026-12-07T08:36:00Z", true),
            ("2026-12-07T08:50:00Z", true),
        ]);
        assert_eq!(
            sent,
            vec![
                ("2026-12-07T08:00:00Z".to_string(), Notice::Firing),
                ("2026-12-07T08:05:00Z".to_string(), Notice::Resolved),
                ("2026-12-07T08:36:00Z".to_string(), Notice::Firing),
            ]
        );
    }

    #[test]
    fn a_firing_held_back_and_cleared_within_the_cool_down_is_never_sent() {
        let sent = run(&[
            ("2026-12-07T08:00:00Z", true),
            ("2026-12-07T08:05:00Z", false),
            ("2026-12-07T08:10:00Z", true),
            ("2026-12-07T08:12:00Z", false),
            ("2026-12-07T09:00:00Z", false),
        ]);
        assert_eq!(sent.len(), 2, "{sent:?}");
    }

    fn rule(yaml: &str) -> AlertsConfig {
        let doc = crate::config::Document::parse("alerts.yaml", yaml).unwrap();
        doc.deserialize::<AlertsConfig>().0.unwrap()
    }

    fn lab(last: &str, received: i64, errors: i64) -> ConnectorView {
        ConnectorView {
            name: "lab".into(),
            kind: "mllp".into(),
            state: "running".into(),
            received,
            errors,
            last_activity: Some(at(last)),
            last_run_failed: None,
        }
    }

    #[test]
    fn silence_counts_only_within_the_watched_hours_and_days() {
        let config = rule(
            "alerts:\n  quiet:\n    kind: no_messages\n    connector: lab\n    minutes: 30\n    hours: {start: \"08:00\", end: \"18:00\"}\n    weekdays: [mon, tue, wed, thu, fri]\n",
        );
        let tz = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let snap = |last: &str| Snapshot {
            connectors: vec![lab(last, 0, 0)],
            ..Default::default()
        };
        let fires = |last: &str, now: &str| {
            evaluate(&config, &[], &snap(last), &History::default(), at(now), &tz)[0].firing
        };
        // Monday 2026-12-07, 10:00 in Hanoi = 03:00Z: last message at 09:00 local → 60 min.
        assert!(fires("2026-12-07T02:00:00Z", "2026-12-07T03:00:00Z"));
        assert!(!fires("2026-12-07T02:45:00Z", "2026-12-07T03:00:00Z"));
        // 08:20 local on Monday, last message Friday: only 20 min of the window have passed.
        assert!(!fires("2026-12-04T10:00:00Z", "2026-12-07T01:20:00Z"));
        assert!(fires("2026-12-04T10:00:00Z", "2026-12-07T01:31:00Z"));
        // 19:00 local: outside the hours. Sunday: not a watched day.
        assert!(!fires("2026-12-07T02:00:00Z", "2026-12-07T12:00:00Z"));
        assert!(!fires("2026-12-06T02:00:00Z", "2026-12-06T05:00:00Z"));
    }

    #[test]
    fn the_error_rate_is_taken_over_the_window_from_the_stores_counters() {
        let config = rule("alerts:\n  errors:\n    kind: error_rate\n    percent: 5\n    window_mins: 15\n");
        let tz = TimeZone::UTC;
        let enabled = vec!["lab".to_string()];
        let mut history = History::default();
        let s0 = Snapshot {
            connectors: vec![lab("2026-12-07T08:00:00Z", 1000, 10)],
            ..Default::default()
        };
        history.record(at("2026-12-07T08:00:00Z"), &s0, 3600);
        // 100 more messages, 4 errors: 4 %.
        let s1 = Snapshot {
            connectors: vec![lab("2026-12-07T08:15:00Z", 1100, 14)],
            ..Default::default()
        };
        let f = evaluate(&config, &enabled, &s1, &history, at("2026-12-07T08:15:00Z"), &tz);
        assert_eq!(f[0].key, "errors:lab");
        assert!(!f[0].firing, "{}", f[0].summary);
        // 100 more, 6 errors: 6 %.
        let s2 = Snapshot {
            connectors: vec![lab("2026-12-07T08:15:00Z", 1100, 16)],
            ..Default::default()
        };
        let f = evaluate(&config, &enabled, &s2, &history, at("2026-12-07T08:15:00Z"), &tz);
        assert!(f[0].firing, "{}", f[0].summary);
        assert_eq!(
            f[0].summary,
            "connector lab: 6 errors in 100 messages (6.0 %) over the last 15 min (limit 5 %)"
        );
    }

    #[test]
    fn backlogs_review_pulls_and_down_connectors_fire_past_their_limits() {
        let config = rule(
            "alerts:\n  down:\n    kind: connector_down\n  outbox:\n    kind: backlog\n    of: outbox\n    minutes: 10\n  queue:\n    kind: backlog\n    of: queue\n    minutes: 10\n  review:\n    kind: review_queue\n    over: 5\n  pull:\n    kind: fhir_pull_failing\n  disk:\n    kind: disk_space\n    min_free_percent: 10\n",
        );
        let mut lab = lab("2026-12-07T08:00:00Z", 0, 0);
        lab.state = "degraded".into();
        let mut ehr = ConnectorView {
            name: "ehr".into(),
            kind: "fhir".into(),
            ..lab.clone()
        };
        ehr.state = "running".into();
        ehr.last_run_failed = Some(at("2026-12-07T07:59:00Z"));
        let snapshot = Snapshot {
            connectors: vec![lab, ehr],
            outbox_oldest_secs: Some(11.0 * 60.0),
            queue_oldest_secs: Some(9.0 * 60.0),
            review_open: 6,
            disk_free_percent: [(String::new(), 12.5)].into(),
        };
        let enabled = vec!["lab".to_string(), "ehr".to_string()];
        let found = evaluate(
            &config,
            &enabled,
            &snapshot,
            &History::default(),
            at("2026-12-07T08:00:00Z"),
            &TimeZone::UTC,
        );
        let firing: Vec<&str> = found
            .iter()
            .filter(|f| f.firing)
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(firing, ["down:lab", "outbox", "pull:ehr", "review"], "{found:#?}");
        let quiet: Vec<&str> = found
            .iter()
            .filter(|f| !f.firing)
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(quiet, ["disk", "down:ehr", "queue"], "{found:#?}");
        let outbox = found.iter().find(|f| f.key == "outbox").unwrap();
        assert_eq!(
            outbox.summary,
            "the outbox's oldest due notification has waited 11 min (limit 10 min)"
        );
    }
}
