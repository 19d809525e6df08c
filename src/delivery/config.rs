//! `notifications:` in `config/carehub.yaml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::rules::CapConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Turn every notification off (rules are still checked by `validate`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Folder of rule files, one rule per file.
    #[serde(default = "default_rules_dir")]
    pub rules_dir: String,
    /// Folder of templates `<name>.<lang>.txt`.
    #[serde(default = "default_templates_dir")]
    pub templates_dir: String,
    /// The clinic's language, tried after the patient's and before English.
    #[serde(default = "default_language")]
    pub default_language: String,
    /// No send between `start` and `end` (local time of the patient, or of the clinic);
    /// sends falling inside wait for `end`. Set `quiet_hours: null`… or omit for 21:00–08:00.
    #[serde(default = "default_quiet_hours")]
    pub quiet_hours: Option<QuietHours>,
    /// What templates call `clinic`.
    #[serde(default)]
    pub clinic: ClinicInfo,
    /// Links templates print as `link`, by template name (a result notice links to the
    /// portal's results page rather than carrying the results).
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// Frequency caps per category for each person, over every rule (`marketing: {max: 4, per: 30d}`).
    #[serde(default)]
    pub caps: BTreeMap<String, CapConfig>,
    /// How often the relay looks for due notifications.
    #[serde(default = "default_relay_interval_ms")]
    pub relay_interval_ms: u64,
    /// Notifications the relay handles per pass.
    #[serde(default = "default_relay_batch")]
    pub relay_batch: i64,
    /// Sends a channel worker makes at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long a worker holds a send before another may take it (longer than a provider call).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `21:00`.
    pub start: String,
    /// `08:00`.
    pub end: String,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            enabled: true,
            rules_dir: default_rules_dir(),
            templates_dir: default_templates_dir(),
            default_language: default_language(),
            quiet_hours: default_quiet_hours(),
            clinic: ClinicInfo::default(),
            links: BTreeMap::new(),
            caps: BTreeMap::new(),
            relay_interval_ms: default_relay_interval_ms(),
            relay_batch: default_relay_batch(),
            concurrency: default_concurrency(),
            lease_secs: default_lease_secs(),
        }
    }
}

impl NotifyConfig {
    /// Checks what serde cannot (clock times, cap spans, categories).
    pub fn check(&self, doc: &crate::config::Document) -> Vec<crate::config::Problem> {
        let mut p = Vec::new();
        if let Some(q) = &self.quiet_hours {
            for (field, value) in [("start", &q.start), ("end", &q.end)] {
                if let Err(e) = crate::rules::parse_clock(value) {
                    p.push(doc.problem(&format!("notifications.quiet_hours.{field}"), e));
                }
            }
        }
        for (category, cap) in &self.caps {
            if !matches!(category.as_str(), "transactional" | "marketing") {
                p.push(doc.problem(
                    &format!("notifications.caps.{category}"),
                    "a category is transactional or marketing",
                ));
            }
            if let Err(e) = crate::rules::Span::parse(&cap.per) {
                p.push(doc.problem(&format!("notifications.caps.{category}.per"), e));
            }
        }
        if super::templates::normalize_language(&self.default_language).is_none() {
            p.push(doc.problem(
                "notifications.default_language",
                "a language code such as vi, ru, zh, en",
            ));
        }
        p
    }
}

fn yes() -> bool {
    true
}
fn default_rules_dir() -> String {
    "config/rules".into()
}
fn default_templates_dir() -> String {
    "config/templates".into()
}
fn default_language() -> String {
    "en".into()
}
fn default_quiet_hours() -> Option<QuietHours> {
    Some(QuietHours {
        start: "21:00".into(),
        end: "08:00".into(),
    })
}
fn default_relay_interval_ms() -> u64 {
    500
}
fn default_relay_batch() -> i64 {
    500
}
fn default_concurrency() -> usize {
    16
}
fn default_lease_secs() -> u64 {
    60
}
