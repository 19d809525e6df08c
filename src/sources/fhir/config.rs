//! `type: fhir` connector settings: a FHIR R4 server pulled on a schedule.

use serde::Deserialize;

use crate::config::{Document, Problem, Secret};

/// A FHIR R4 REST server the hub pulls what changed from, on a cron schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// Unique connector name, shown in the API and the message log.
    pub name: String,
    /// A disabled connector is validated but never runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The server's base URL (`https://ehr.example.org/fhir`).
    pub base_url: String,
    /// What to pull, in order: a resource type and, optionally, extra search parameters.
    pub resources: Vec<ResourceQuery>,
    /// When to run: standard cron, 5 fields (minute hour day month weekday, weekday 1 = Monday)
    /// or 6 with seconds first, in the connector's (else the hub's) time zone.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Resources per page (`_count`).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How to authenticate.
    #[serde(default)]
    pub auth: FhirAuth,
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Longest wait for one response.
    #[serde(default = "default_read_timeout_secs")]
    pub read_timeout_secs: u64,
    /// Attempts per request before the run fails and the connector is marked degraded.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First wait between attempts; it doubles (with jitter) up to `max_backoff_secs`. A
    /// `Retry-After` from the server is honoured (up to `max_backoff_secs`).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// Mapping to apply to every resource; by default the one whose `resource_types` lists it.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Name of the system in provenance and record keys; by default the connector's name.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Phone region for numbers without a country code; by default the hub's `phone_region`.
    #[serde(default)]
    pub phone_region: Option<String>,
    /// IANA time zone for the schedule and for times without an offset; by default the hub's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// How long this connector's raw message bodies are kept; each field absent takes the
    /// hub's `retention:` value (docs/operations.md).
    #[serde(default)]
    pub retention: crate::config::RetentionPolicy,
}

/// One resource type to pull.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceQuery {
    /// `Patient`, `Encounter`, `Observation`…
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Extra search parameters, as in a URL: `category=laboratory&_include=Observation:patient`.
    #[serde(default)]
    pub params: Option<String>,
    /// Read the type's history (`Type/_history?_since=`) instead of searching: deletions are
    /// seen too (the records a deleted resource stated become `entered-in-error`).
    #[serde(default)]
    pub history: bool,
}

/// Authentication against the server. Secrets come from the environment (`${VAR}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FhirAuth {
    #[default]
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Bearer {
        token: Secret,
    },
    /// OAuth 2.0 client credentials: a token from `token_url`, cached until it expires and
    /// fetched again on expiry or on a 401.
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        #[serde(default)]
        scope: Option<String>,
    },
    /// SMART Backend Services: client credentials with a signed JWT assertion (ES384 or RS384,
    /// from a PKCS#8 PEM private key — give it from the environment: `${SMART_PRIVATE_KEY}`).
    SmartBackend {
        token_url: String,
        client_id: String,
        private_key: Secret,
        /// The `kid` the server knows the key by (in its JWKS).
        #[serde(default)]
        key_id: Option<String>,
        #[serde(default = "default_smart_scope")]
        scope: String,
    },
}

fn default_smart_scope() -> String {
    "system/*.read".into()
}

fn yes() -> bool {
    true
}
fn default_schedule() -> String {
    "*/5 * * * *".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_connect_timeout_secs() -> u64 {
    10
}
fn default_read_timeout_secs() -> u64 {
    60
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_secs() -> u64 {
    60
}

impl FhirConfig {
    /// Checks what serde cannot: URLs, the schedule, resource types, limits.
    pub fn check(&self, doc: &Document) -> Vec<Problem> {
        let mut problems = Vec::new();
        let url_ok = |u: &str| {
            reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
        };
        if !url_ok(&self.base_url) {
            problems.push(doc.problem(
                "base_url",
                format!("expected an http(s) URL, got \"{}\"", self.base_url),
            ));
        }
        if let FhirAuth::Oauth2ClientCredentials { token_url, .. } | FhirAuth::SmartBackend { token_url, .. } =
            &self.auth
            && !url_ok(token_url)
        {
            problems.push(doc.problem(
                "auth.token_url",
                format!("expected an http(s) URL, got \"{token_url}\""),
            ));
        }
        if let FhirAuth::SmartBackend { private_key, .. } = &self.auth
            && let Err(e) = super::client::SigningKey::from_pem(private_key.expose())
        {
            problems.push(doc.problem("auth.private_key", e));
        }
        if let Err(e) = super::schedule::parse(&self.schedule) {
            problems.push(doc.problem("schedule", e));
        }
        if self.resources.is_empty() {
            problems.push(doc.problem("resources", "list at least one resource type to pull"));
        }
        for (i, r) in self.resources.iter().enumerate() {
            let t = &r.resource_type;
            if t.is_empty()
                || !t.starts_with(|c: char| c.is_ascii_uppercase())
                || !t.chars().all(|c| c.is_ascii_alphanumeric())
            {
                problems.push(doc.problem(
                    &format!("resources.{i}.type"),
                    format!("\"{t}\" is not a FHIR resource type such as Patient"),
                ));
            }
            if let Some(p) = &r.params
                && (p.starts_with(['?', '&']) || p.contains("_lastUpdated") || p.contains("_count="))
            {
                problems.push(doc.problem(
                    &format!("resources.{i}.params"),
                    "write parameters as a=b&c=d, without _lastUpdated or _count (the connector sets them)",
                ));
            }
        }
        if !(1..=1000).contains(&self.page_size) {
            problems.push(doc.problem("page_size", "must be between 1 and 1000"));
        }
        if self.max_attempts == 0 {
            problems.push(doc.problem("max_attempts", "must be at least 1"));
        }
        problems
    }
}
