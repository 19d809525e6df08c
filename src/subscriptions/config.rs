//! `subscriptions:` in `config/carehub.yaml`: the clinic systems told of changes, and the
//! checks `carehub validate` runs on them.

use serde::Deserialize;

use crate::config::{Document, Problem, Secret};
use crate::store::{ChangeFilter, SubscriptionRow};

/// One clinic system that hears of changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Unique name (letters, digits, `-` and `_`); the FHIR payload names it `Subscription/<name>`.
    pub name: String,
    /// Where each notification is POSTed: an `http://` or `https://` URL of the clinic system.
    pub url: String,
    /// The events it wants (default: all of them).
    #[serde(default)]
    pub events: Vec<ChangeEvent>,
    /// For `record.changed`: only records of these kinds (default: every kind).
    #[serde(default)]
    pub record_kinds: Vec<RecordKind>,
    /// `event` (a small JSON object, the default) or `fhir` (a FHIR R4 notification bundle).
    #[serde(default)]
    pub payload: Payload,
    /// The HMAC-SHA256 key of the signature header, from the environment (`${HOOK_SECRET}`),
    /// at least 16 characters.
    pub secret: Secret,
}

/// What a subscription can hear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub enum ChangeEvent {
    /// A new person was made.
    #[serde(rename = "patient.created")]
    PatientCreated,
    /// A person's golden record changed (a message restated it, or an unmerge).
    #[serde(rename = "patient.updated")]
    PatientUpdated,
    /// A person was merged into another (the event names the survivor and the merged one).
    #[serde(rename = "patient.merged")]
    PatientMerged,
    /// A clinical record (encounter, appointment, order, result, diagnosis) was written.
    #[serde(rename = "record.changed")]
    RecordChanged,
}

impl ChangeEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeEvent::PatientCreated => "patient.created",
            ChangeEvent::PatientUpdated => "patient.updated",
            ChangeEvent::PatientMerged => "patient.merged",
            ChangeEvent::RecordChanged => "record.changed",
        }
    }
}

/// The kinds of clinical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Encounter,
    Appointment,
    Order,
    Result,
    Diagnosis,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Encounter => "encounter",
            RecordKind::Appointment => "appointment",
            RecordKind::Order => "order",
            RecordKind::Result => "result",
            RecordKind::Diagnosis => "diagnosis",
        }
    }
}

/// The body of a notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Payload {
    /// `{"id", "event", "person", "record", "merged", "time"}` (application/json).
    #[default]
    Event,
    /// A FHIR R4 `history` Bundle shaped after the R4 Subscriptions Backport's notification
    /// (application/fhir+json): a status `Parameters` entry, then the focus by reference.
    Fhir,
}

impl Payload {
    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Event => "event",
            Payload::Fhir => "fhir",
        }
    }
}

/// The shortest secret accepted.
pub const MIN_SECRET_CHARS: usize = 16;

/// A subscription name's problem, if any.
pub fn name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (!ok).then(|| "use 1 to 64 letters, digits, - and _".to_string())
}

/// The URLs a subscription accepts, as the OpenAPI document states it (and [`url_problem`]
/// checks it, by hand): http(s), a lower-case host name (labels start with a letter; a hyphen
/// only between letters or digits) or an IPv4 address, an optional port, a path and a query
/// of plain characters.
pub const URL_PATTERN: &str = r"^https?://(([a-z]([a-z0-9]|-[a-z0-9])*)(\.[a-z]([a-z0-9]|-[a-z0-9])*)*|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~-]*)*(\?[A-Za-z0-9._~=&-]*)?$";

/// A URL's problem, if any (see [`URL_PATTERN`]).
pub fn url_problem(url: &str) -> Option<String> {
    let fail = || {
        Some("must be an http:// or https:// URL: a lower-case host name or an IPv4 address, an optional port, then a path and query of letters, digits and . _ ~ - (= & in the query)".to_string())
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return fail();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let labels: Vec<&str> = host.split('.').collect();
    let octet = |l: &str| {
        !l.is_empty()
            && l.len() <= 3
            && l.bytes().all(|b| b.is_ascii_digit())
            && (l.len() == 1 || !l.starts_with('0'))
            && l.parse::<u16>().is_ok_and(|n| n <= 255)
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase()
            && b.iter().enumerate().all(|(i, c)| match c {
                b'a'..=b'z' | b'0'..=b'9' => true,
                b'-' => b
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit()),
                _ => false,
            })
    };
    let host_ok = labels.iter().all(|l| label(l)) || (labels.len() == 4 && labels.iter().all(|l| octet(l)));
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && !p.starts_with('0')
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
    let path_ok = path.is_empty() || (path.starts_with('/') && path.chars().all(|c| plain(c) || c == '/'));
    let query_ok = query.is_none_or(|q| q.chars().all(|c| plain(c) || c == '=' || c == '&'));
    if host_ok && port_ok && path_ok && query_ok {
        None
    } else {
        fail()
    }
}

/// Every problem of the configured subscriptions, as `file:line: field: problem`.
pub fn check(subs: &[SubscriptionConfig], doc: &Document) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, s) in subs.iter().enumerate() {
        let at = |field: &str| format!("subscriptions.{i}.{field}");
        if let Some(p) = name_problem(&s.name) {
            problems.push(doc.problem(&at("name"), p));
        }
        if subs[..i].iter().any(|o| o.name == s.name) {
            problems.push(doc.problem(&at("name"), format!("subscription {} is defined twice", s.name)));
        }
        if let Some(p) = url_problem(&s.url) {
            problems.push(doc.problem(&at("url"), p));
        }
        if s.secret.expose().chars().count() < MIN_SECRET_CHARS {
            problems.push(doc.problem(
                &at("secret"),
                format!("at least {MIN_SECRET_CHARS} characters (from the environment: ${{NAME}})"),
            ));
        }
        if !s.record_kinds.is_empty()
            && !s.events.is_empty()
            && !s.events.contains(&ChangeEvent::RecordChanged)
        {
            problems.push(doc.problem(&at("record_kinds"), "only used with the event record.changed"));
        }
    }
    problems
}

/// The filter a subscription is stored with.
pub fn filter(events: &[ChangeEvent], kinds: &[RecordKind]) -> ChangeFilter {
    ChangeFilter {
        events: events.iter().map(|e| e.as_str().to_string()).collect(),
        record_kinds: kinds.iter().map(|k| k.as_str().to_string()).collect(),
    }
}

impl SubscriptionConfig {
    /// The row the store keeps (without the secret: it stays in the environment).
    pub fn row(&self) -> SubscriptionRow {
        SubscriptionRow {
            name: self.name.clone(),
            url: self.url.clone(),
            filter: filter(&self.events, &self.record_kinds),
            payload: self.payload.as_str().to_string(),
            secret: None,
            origin: "config".into(),
            through: 0,
            created_at: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_problem;

    #[test]
    fn urls_are_http_with_a_plain_host_port_and_path() {
        for ok in [
            "http://127.0.0.1:8080/hook",
            "https://emr-gateway.clinic.example/carehub/hook?v=1&x=y",
            "http://localhost",
            "https://a.b:65535/",
        ] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for bad in [
            "ftp://emr.example/",
            "http://",
            "http://EMR.example/",
            "http://1.2.3.256/",
            "http://a.1/",
            "http://xn--zz.example/",
            "http://emr.example:0/",
            "http://emr.example:65536/",
            "http://emr.example/a b",
            "http://user@emr.example/",
            "emr.example/hook",
        ] {
            assert!(url_problem(bad).is_some(), "{bad}");
        }
    }
}
