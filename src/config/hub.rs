//! `config/carehub.yaml`: the hub-wide settings (store, API, directories, logging, pipeline).
//!
//! Only the serde shape and the pure checks live here; loading and the file walk are in
//! `config/mod.rs`. Every field has a default so that an empty file is a valid first run.

use serde::Deserialize;

use super::yaml::{Document, Problem};

/// The hub-wide settings.
#[derive(Debug, Clone, Deserialize)]
pub struct HubConfig {
    /// Where unified profiles and the message log are kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Folder of connector files (`*.yaml`, one connector each), relative to the working directory.
    #[serde(default = "default_connectors_dir")]
    pub connectors_dir: String,
    /// Folder of mapping files (`*.yaml`), relative to the working directory.
    #[serde(default = "default_mappings_dir")]
    pub mappings_dir: String,
    /// The clinic's time zone (IANA name), used for HL7 times that carry no offset.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Region used to read phone numbers written without a country code (ISO 3166 alpha-2).
    #[serde(default = "default_phone_region")]
    pub phone_region: String,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The ingest pipeline.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Matching incoming records to persons (docs/identity.md).
    #[serde(default)]
    pub identity: crate::identity::IdentityConfig,
    /// Notifications: rules, templates, quiet hours, caps (docs/notifications.md).
    #[serde(default)]
    pub notifications: crate::delivery::NotifyConfig,
    /// The queue between the outbox and the channel workers: `embedded` or `rabbitmq`.
    #[serde(default)]
    pub queue: crate::queue::QueueConfig,
    /// Channels by name, each with its `type` (docs/channels.md); checked by
    /// `crate::channels::ChannelConfig::from_value`.
    #[serde(default)]
    pub channels: std::collections::BTreeMap<String, serde_json::Value>,
    /// How long raw message bodies are kept, and when the prune runs (docs/operations.md).
    #[serde(default)]
    pub retention: super::retention::RetentionConfig,
    /// The alerts file (docs/operations.md#alerts); default `alerts.yaml` beside this file.
    /// Optional: no file, no alerts.
    #[serde(default)]
    pub alerts_file: Option<String>,
    /// FHIR out (the `/fhir/r4` read API, exports): identifier and code system URIs
    /// (docs/fhir-api.md).
    #[serde(default)]
    pub fhir: crate::fhir_out::FhirOutConfig,
    /// Clinic systems told of changes to patients and their records (docs/subscriptions.md).
    #[serde(default)]
    pub subscriptions: Vec<crate::subscriptions::SubscriptionConfig>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            store: StoreConfig::default(),
            api: ApiConfig::default(),
            connectors_dir: default_connectors_dir(),
            mappings_dir: default_mappings_dir(),
            timezone: default_timezone(),
            phone_region: default_phone_region(),
            log: LogConfig::default(),
            pipeline: PipelineConfig::default(),
            identity: Default::default(),
            notifications: Default::default(),
            queue: Default::default(),
            channels: Default::default(),
            retention: Default::default(),
            alerts_file: None,
            fhir: Default::default(),
            subscriptions: Vec::new(),
        }
    }
}

fn default_connectors_dir() -> String {
    "connectors".into()
}
fn default_mappings_dir() -> String {
    "mappings".into()
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_phone_region() -> String {
    "VN".into()
}

/// The profile store.
#[derive(Clone, Deserialize)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection before failing.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// SQLite only: `full` syncs every commit to disk before an ACK goes out (survives a power
    /// loss); `normal` survives a crash of carehub but may lose the last commits on a power loss.
    #[serde(default)]
    pub sqlite_synchronous: SqliteSync,
    /// Encryption at rest (docs/security.md#encryption-at-rest-key-rotation-backup-and-restore), from the environment
    /// (`${CAREHUB_STORE_KEY}`), at least 32 characters of random text. SQLite: the whole file
    /// and its write-ahead log (SQLCipher). PostgreSQL: message bodies and notification texts.
    /// Unset: nothing is encrypted by carehub. Change it with `carehub rekey`.
    #[serde(default)]
    pub encryption_key: Option<crate::config::Secret>,
}

/// SQLite's `synchronous` setting, as offered.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("encryption_key", &self.encryption_key)
            .finish()
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            max_connections: default_max_connections(),
            connect_timeout_secs: default_connect_timeout_secs(),
            sqlite_synchronous: SqliteSync::default(),
            encryption_key: None,
        }
    }
}

fn default_store_url() -> String {
    "sqlite://data/carehub.db".into()
}
fn default_max_connections() -> u32 {
    8
}
fn default_connect_timeout_secs() -> u64 {
    5
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiConfig {
    /// Serve the API at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// A request that takes longer is answered 408.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Largest request body accepted.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Who may call the API: tokens, the first admin token, the identity provider.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Serve HTTPS instead of HTTP (PEM paths; optional client certificates).
    #[serde(default)]
    pub tls: Option<crate::net::TlsConfig>,
}

/// API access (docs/security.md). Every route but the health checks and provider webhooks
/// needs a token; there is no switch to turn that off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Where the first start writes the admin token it makes when no active admin token
    /// exists (mode 0600), relative to the working directory.
    #[serde(default = "default_admin_token_file")]
    pub admin_token_file: String,
    /// An admin token given from the environment (`${CAREHUB_ADMIN_TOKEN}`, at least 32
    /// characters), stored (hashed) on start: for deployments whose automation must know it.
    /// Empty means none.
    #[serde(default)]
    pub admin_token: Option<super::Secret>,
    /// Bearer JWTs from the clinic's identity provider (Keycloak, Azure AD…), verified
    /// against its keys; the role comes from a configured claim (docs/security.md#oidc).
    #[serde(default)]
    pub oidc: Option<crate::api::oidc::OidcConfig>,
    /// How long a console login lasts (hours); a session also ends when its token is revoked
    /// or expires, or at logout.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admin_token_file: default_admin_token_file(),
            admin_token: None,
            oidc: None,
            session_hours: default_session_hours(),
        }
    }
}

fn default_session_hours() -> u64 {
    12
}

fn default_admin_token_file() -> String {
    "data/admin.token".into()
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: default_api_listen(),
            request_timeout_secs: default_request_timeout_secs(),
            max_body_bytes: default_max_body_bytes(),
            auth: AuthConfig::default(),
            tls: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_api_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_request_timeout_secs() -> u64 {
    30
}
fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `carehub=debug`; `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The ingest pipeline: one writer commits records from every connector in groups.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineConfig {
    /// Most records committed in one transaction.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Records waiting for the writer before senders are slowed down.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_batch: default_max_batch(),
            queue_depth: default_queue_depth(),
        }
    }
}

/// Largest group commit: keeps one batch's look-up query within SQLite's statement limits.
pub const MAX_BATCH_LIMIT: usize = 1000;

fn default_max_batch() -> usize {
    256
}
fn default_queue_depth() -> usize {
    4096
}

impl HubConfig {
    /// Pure checks: every problem, none of them I/O.
    pub fn check(&self, doc: &Document) -> Vec<Problem> {
        let mut problems = Vec::new();
        let url = &self.store.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            problems.push(doc.problem(
                "store.url",
                format!(
                    "expected sqlite://PATH or postgres://…, got \"{}\"",
                    redact_url(url)
                ),
            ));
        }
        if self.store.max_connections == 0 {
            problems.push(doc.problem("store.max_connections", "must be at least 1"));
        }
        if let Some(key) = &self.store.encryption_key
            && key.expose().chars().count() < crate::store::MIN_KEY_CHARS
        {
            problems.push(doc.problem(
                "store.encryption_key",
                format!(
                    "too short: use at least {} characters of random text (openssl rand -base64 32)",
                    crate::store::MIN_KEY_CHARS
                ),
            ));
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(doc.problem(
                "api.listen",
                format!(
                    "expected HOST:PORT such as 127.0.0.1:8080, got \"{}\"",
                    self.api.listen
                ),
            ));
        }
        if let Some(t) = &self.api.auth.admin_token
            && !t.expose().is_empty()
            && t.expose().len() < 32
        {
            problems.push(doc.problem(
                "api.auth.admin_token",
                "must be at least 32 characters (make one with `openssl rand -base64 32`)",
            ));
        }
        if let Some(oidc) = &self.api.auth.oidc {
            problems.extend(oidc.check(doc, "api.auth.oidc"));
        }
        if let Some(tls) = &self.api.tls {
            problems.extend(tls.check(doc, "api.tls"));
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            problems.push(doc.problem(
                "timezone",
                format!(
                    "unknown time zone \"{}\" (use an IANA name such as Asia/Ho_Chi_Minh)",
                    self.timezone
                ),
            ));
        }
        if !is_region(&self.phone_region) {
            problems.push(doc.problem(
                "phone_region",
                format!(
                    "expected a two-letter region such as VN, got \"{}\"",
                    self.phone_region
                ),
            ));
        }
        if !(1..=MAX_BATCH_LIMIT).contains(&self.pipeline.max_batch) {
            problems.push(doc.problem(
                "pipeline.max_batch",
                format!("must be from 1 to {MAX_BATCH_LIMIT}"),
            ));
        }
        if self.pipeline.queue_depth == 0 {
            problems.push(doc.problem("pipeline.queue_depth", "must be at least 1"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problems.push(doc.problem("log.level", "not a valid log filter (try info or debug)"));
        }
        if let Err(e) = self.identity.model.validate() {
            problems.push(doc.problem("identity.model", e.to_string()));
        }
        for (field, problem) in self.identity.survivorship.problems() {
            problems.push(doc.problem(&format!("identity.survivorship.{field}"), problem));
        }
        if self.identity.max_block == 0 {
            problems.push(doc.problem("identity.max_block", "must be at least 1"));
        }
        problems.extend(self.retention.check(doc));
        problems
    }
}

/// A phone region the phone-number library knows (two ASCII letters it has metadata for).
pub fn is_region(region: &str) -> bool {
    region.len() == 2 && region.parse::<phonenumber::country::Id>().is_ok()
}
