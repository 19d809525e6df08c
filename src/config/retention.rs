//! `retention:` — how long the raw bodies of logged messages are kept (docs/operations.md).
//!
//! One shape serves twice: the hub-wide default in `carehub.yaml` (with the prune job's
//! `schedule`) and a per-connector override in each `connectors/*.yaml`, field by field. Only
//! the serde shape, the pure checks and the arithmetic of cut-off times live here; the prune
//! itself is the store's (`Store::prune_bodies`), its schedule the app's.
//!
//! Which statuses count as what: `processed` and `duplicate` (a byte-for-byte resend of a
//! processed message) follow `processed_body_days`; `error` and `unmapped` (kept so that ops
//! can fix a mapping and look again) follow `error_body_days`; `received` (not yet processed)
//! is never pruned. Metadata — ids, connector, control id, type, status, hash, times, error
//! text — is always kept.

use std::fmt;

use serde::Deserialize;

use super::yaml::{Document, Problem};

/// The longest retention one may write (100 years): more is a typo.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// How long a body is kept: a number of days (24-hour periods after it was received) or
/// `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepBody {
    Days(u32),
    Forever,
}

impl<'de> Deserialize<'de> for KeepBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KeepBody;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of days or \"forever\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KeepBody, E> {
                u32::try_from(v)
                    .map(KeepBody::Days)
                    .map_err(|_| E::custom(format!("{v} days is too long (at most {MAX_RETENTION_DAYS})")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KeepBody, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("expected a number of days, got {v}"))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeepBody, E> {
                match v {
                    "forever" => Ok(KeepBody::Forever),
                    _ => Err(E::custom(format!(
                        "expected a number of days or \"forever\", got \"{v}\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A connector's `retention:`: each field absent takes the hub's `retention:` value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Days the raw body of a `processed` or `duplicate` message is kept after it was
    /// received, or `forever`; absent: the hub's value (forever when that is absent too).
    #[serde(default)]
    pub processed_body_days: Option<KeepBody>,
    /// Days the raw body of an `error` or `unmapped` message is kept, or `forever`; absent:
    /// the hub's value (forever when that is absent too).
    #[serde(default)]
    pub error_body_days: Option<KeepBody>,
}

impl RetentionPolicy {
    /// Pure checks; `prefix` is the policy's key path (`retention`).
    pub fn check(&self, doc: &Document, prefix: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (field, keep) in [
            ("processed_body_days", self.processed_body_days),
            ("error_body_days", self.error_body_days),
        ] {
            if let Some(KeepBody::Days(days)) = keep
                && !(1..=MAX_RETENTION_DAYS).contains(&days)
            {
                problems.push(doc.problem(
                    &format!("{prefix}.{field}"),
                    format!("must be from 1 to {MAX_RETENTION_DAYS} days, or forever (got {days})"),
                ));
            }
        }
        problems
    }

    /// This policy with every absent field taken from `default`.
    pub fn over(&self, default: &RetentionPolicy) -> RetentionPolicy {
        RetentionPolicy {
            processed_body_days: self.processed_body_days.or(default.processed_body_days),
            error_body_days: self.error_body_days.or(default.error_body_days),
        }
    }

    /// The cut-offs at `now`: bodies received before them go. `None`: kept forever.
    pub fn cutoffs(&self, now: jiff::Timestamp) -> Cutoffs {
        let at = |keep: Option<KeepBody>| match keep {
            Some(KeepBody::Days(days)) => now
                .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
                .ok(),
            _ => None,
        };
        Cutoffs {
            processed: at(self.processed_body_days),
            error: at(self.error_body_days),
        }
    }
}

/// When bodies stop being kept, per kind of status (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// `processed`, `duplicate`.
    pub processed: Option<jiff::Timestamp>,
    /// `error`, `unmapped`.
    pub error: Option<jiff::Timestamp>,
}

impl Cutoffs {
    /// The cut-off for a message of this status; `None`: never pruned.
    pub fn for_status(&self, status: &str) -> Option<jiff::Timestamp> {
        match status {
            "processed" | "duplicate" => self.processed,
            "error" | "unmapped" => self.error,
            _ => None,
        }
    }
}

/// The hub-wide `retention:` in `carehub.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The default for every connector: days a processed (or duplicate) message's body is
    /// kept, or `forever`; absent: forever.
    #[serde(default)]
    pub processed_body_days: Option<KeepBody>,
    /// The default for every connector: days an errored (or unmapped) message's body is
    /// kept, or `forever`; absent: forever.
    #[serde(default)]
    pub error_body_days: Option<KeepBody>,
    /// When the prune runs: cron (5 fields, or 6 with seconds first) in the hub's `timezone`.
    #[serde(default = "default_schedule")]
    pub schedule: String,
}

fn default_schedule() -> String {
    "30 3 * * *".into()
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            processed_body_days: None,
            error_body_days: None,
            schedule: default_schedule(),
        }
    }
}

impl RetentionConfig {
    /// The hub's default policy.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            processed_body_days: self.processed_body_days,
            error_body_days: self.error_body_days,
        }
    }

    /// Pure checks of `retention:`.
    pub fn check(&self, doc: &Document) -> Vec<Problem> {
        let mut problems = self.policy().check(doc, "retention");
        if let Err(e) = crate::sources::fhir::schedule::parse(&self.schedule) {
            problems.push(doc.problem("retention.schedule", e));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> (Option<RetentionPolicy>, Vec<String>) {
        let doc = Document::parse("c.yaml", yaml).unwrap();
        let (p, mut problems) = doc.deserialize::<RetentionPolicy>();
        if let Some(p) = &p {
            problems.extend(p.check(&doc, "retention"));
        }
        (p, problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn days_and_forever_read_and_bad_values_are_named_with_their_line() {
        let (p, problems) = policy("processed_body_days: 30\nerror_body_days: forever\n");
        assert!(problems.is_empty(), "{problems:?}");
        let p = p.unwrap();
        assert_eq!(p.processed_body_days, Some(KeepBody::Days(30)));
        assert_eq!(p.error_body_days, Some(KeepBody::Forever));

        let (_, problems) = policy("processed_body_days: 0\n");
        assert_eq!(
            problems,
            ["c.yaml:1: retention.processed_body_days: must be from 1 to 36500 days, or forever (got 0)"]
        );
        let (_, problems) = policy("error_body_days: never\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("forever"), "{problems:?}");
        let (_, problems) = policy("processed_days: 3\n");
        assert_eq!(problems.len(), 1, "an unknown key is a problem: {problems:?}");
    }

    #[test]
    fn a_connector_field_beats_the_default_and_absent_fields_inherit() {
        let default = RetentionPolicy {
            processed_body_days: Some(KeepBody::Days(30)),
            error_body_days: Some(KeepBody::Days(90)),
        };
        let own = RetentionPolicy {
            processed_body_days: Some(KeepBody::Forever),
            error_body_days: None,
        };
        let now: jiff::Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let c = own.over(&default).cutoffs(now);
        assert_eq!(c.processed, None);
        assert_eq!(c.error, Some("2026-09-08T00:00:00Z".parse().unwrap()));
        assert_eq!(c.for_status("unmapped"), c.error);
        assert_eq!(c.for_status("received"), None);
        let d = default.cutoffs(now);
        assert_eq!(
            d.for_status("duplicate"),
            Some("2026-11-07T00:00:00Z".parse().unwrap())
        );
    }
}
