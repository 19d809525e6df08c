//! `spawn_hub()` and friends: a real hub on port 0 with its own temporary store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carehub::app::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const VT: u8 = 0x0b;
pub const FS: u8 = 0x1c;
pub const CR: u8 = 0x0d;

/// The repository's shipped mappings.
pub fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// A hub under test, with its temporary folder.
pub struct TestHub {
    pub hub: Hub,
    pub dir: tempfile::TempDir,
    /// The store's URL (a temp SQLite file or a fresh PostgreSQL schema).
    pub store_url: String,
}

impl TestHub {
    pub fn mllp(&self) -> SocketAddr {
        self.hub.mllp_addr("mllp").expect("mllp connector")
    }
    pub fn api(&self) -> String {
        format!("http://{}", self.hub.api_addr.expect("api"))
    }
    pub fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }
}

/// Which store a test hub uses. The default is SQLite, or what `CAREHUB_TEST_BACKEND`
/// (`sqlite` | `postgres`) says, so that the whole suite can run on either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Default for Backend {
    fn default() -> Self {
        match std::env::var("CAREHUB_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// The local PostgreSQL server the tests use.
pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store URL for a fresh, empty database of `backend`: a temp SQLite file, or a new schema
/// on the local PostgreSQL server. `None` (with a loud message) when PostgreSQL is absent and
/// not required.
pub async fn fresh_store_url(backend: Backend, dir: &Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("carehub.db").display())),
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = match sqlx::PgConnection::connect(PG_URL).await {
                Ok(c) => c,
                Err(e) if required() => {
                    panic!("CAREHUB_REQUIRE_SERVICES=1 but PostgreSQL at {PG_URL} is unreachable: {e}")
                }
                Err(e) => {
                    eprintln!("\n!!! SKIPPED: PostgreSQL at {PG_URL} is unreachable ({e}) !!!\n");
                    return None;
                }
            };
            drop_stale_schemas(&mut conn).await;
            let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .expect("create a test schema");
            Some(format!("{PG_URL}?options=-c%20search_path%3D{schema}"))
        }
    }
}

/// A fresh, empty store of `backend` (see [`fresh_store_url`]), opened, with its URL.
pub async fn fresh_store(backend: Backend, dir: &Path) -> Option<(carehub::store::Store, String)> {
    let url = fresh_store_url(backend, dir).await?;
    let store = carehub::store::Store::open(&carehub::config::StoreConfig {
        url: url.clone(),
        ..Default::default()
    })
    .await
    .expect("open a fresh store");
    Some((store, url))
}

/// Drops test schemas left by runs more than an hour old (their names are UUIDv7: the first
/// 12 hex digits are the creation time in milliseconds). Once per test process.
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let hour_ago = jiff::Timestamp::now().as_millisecond() - 3_600_000;
    for name in names {
        let created = name.get(2..14).and_then(|h| i64::from_str_radix(h, 16).ok());
        if created.is_some_and(|ms| ms < hour_ago)
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// Options for [`spawn_hub_with`].
#[derive(Default)]
pub struct HubOptions {
    /// The store backend (SQLite unless a test says otherwise).
    pub backend: Backend,
    /// Extra keys for the MLLP connector file.
    pub mllp_extra: String,
    /// Add a file connector reading `<tmp>/inbox`.
    pub file_connector: bool,
    pub file_extra: String,
    /// Add a FHIR push connector at `/fhir/r4`.
    pub fhir_push: bool,
    /// More connector files: (file name, YAML).
    pub connectors: Vec<(String, String)>,
    /// Notification rule files: (file name, YAML). None: no rules.
    pub rules: Vec<(String, String)>,
    /// More top-level YAML for carehub.yaml (`channels:`, `queue:`, `notifications:` keys
    /// other than the folders).
    pub hub_extra: String,
    /// More keys under `api:` (each line indented by two spaces), e.g. `  tls:\n    cert_path: …`.
    pub api_extra: String,
    /// More keys under `api.auth:` (each line indented by four spaces), e.g. an `oidc:` block.
    pub auth_extra: String,
    /// Start as a first run does: no admin token given, so the hub makes one and writes it to
    /// `<tmp>/admin.token` (the default is [`ADMIN_TOKEN`], given from the environment).
    pub first_run_admin: bool,
    /// More keys of the `store:` section, each line indented by two spaces
    /// (`"  encryption_key: …\n"`).
    pub store_extra: String,
    /// Use this store URL instead of a fresh one (a test reopening its own store).
    pub store_url: Option<String>,
    /// Read mapping files from this folder instead of the repository's `mappings/`.
    pub mappings_dir: Option<PathBuf>,
}

pub async fn spawn_hub() -> TestHub {
    spawn_hub_with(HubOptions::default()).await
}

pub async fn spawn_hub_with(opts: HubOptions) -> TestHub {
    try_spawn_hub_with(opts)
        .await
        .expect("the test's store backend is available")
}

/// Like [`spawn_hub_with`], but `None` when the backend's server is absent and not required.
pub async fn try_spawn_hub_with(opts: HubOptions) -> Option<TestHub> {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    // CAREHUB_TEST_STORE_KEY runs every test hub on an encrypted store (docs/security.md#encryption-at-rest-key-rotation-backup-and-restore).
    let store_extra = match std::env::var("CAREHUB_TEST_STORE_KEY") {
        Ok(key) if opts.store_extra.is_empty() => format!("  encryption_key: \"{key}\"\n"),
        _ => opts.store_extra.clone(),
    };
    let store_url = match &opts.store_url {
        Some(url) => url.clone(),
        None => fresh_store_url(opts.backend, root).await?,
    };
    std::fs::create_dir_all(root.join("connectors")).unwrap();
    let config = format!(
        "store:\n  url: \"{db}\"\n{store_extra}api:\n  listen: 127.0.0.1:0\n{api_extra}  auth:\n    admin_token: \"${{CAREHUB_ADMIN_TOKEN:-}}\"\n    admin_token_file: {token_file}\n{auth_extra}connectors_dir: {conn}\nmappings_dir: {maps}\ntimezone: Asia/Ho_Chi_Minh\nphone_region: VN\npipeline:\n  max_batch: 64\n{extra}",
        db = store_url,
        token_file = root.join("admin.token").display(),
        api_extra = opts.api_extra,
        store_extra = store_extra,
        conn = root.join("connectors").display(),
        maps = opts.mappings_dir.clone().unwrap_or_else(mappings_dir).display(),
        extra = notifications_yaml(root, &opts.hub_extra),
        auth_extra = opts.auth_extra,
    );
    if !opts.rules.is_empty() {
        std::fs::create_dir_all(root.join("rules")).unwrap();
    }
    for (file, yaml) in &opts.rules {
        std::fs::write(root.join("rules").join(file), yaml).unwrap();
    }
    std::fs::write(root.join("carehub.yaml"), config).unwrap();
    std::fs::write(
        root.join("connectors/mllp.yaml"),
        format!("type: mllp\nname: mllp\nlisten: 127.0.0.1:0\n{}", opts.mllp_extra),
    )
    .unwrap();
    if opts.file_connector {
        std::fs::write(
            root.join("connectors/inbox.yaml"),
            with_defaults(
                &format!(
                    "type: file\nname: inbox\ndir: {}\n{}",
                    root.join("inbox").display(),
                    opts.file_extra
                ),
                &[("poll_interval_ms", "50"), ("min_file_age_ms", "0")],
            ),
        )
        .unwrap();
    }
    if opts.fhir_push {
        std::fs::write(
            root.join("connectors/fhir.yaml"),
            "type: fhir_push\nname: fhir\npath: /fhir/r4\nsource_system: EHR-FHIR\nmax_resources: 50\n",
        )
        .unwrap();
    }
    for (file, yaml) in &opts.connectors {
        std::fs::write(root.join("connectors").join(file), yaml).unwrap();
    }
    let given = if opts.first_run_admin { "" } else { ADMIN_TOKEN };
    let env = [("CAREHUB_ADMIN_TOKEN".to_string(), given.to_string())];
    let settings = match carehub::config::load_with_env(&root.join("carehub.yaml"), &env) {
        Ok(s) => s,
        Err(problems) => panic!("test config invalid: {problems:#?}"),
    };
    let hub = carehub::app::start(settings).await.expect("hub starts");
    Some(TestHub { hub, dir, store_url })
}

/// The `notifications:` folders of a test hub (its own rules, the shipped templates) and the
/// test's extra hub YAML, which may hold a `notifications:` block of its own: its keys are
/// merged under the one written here.
fn notifications_yaml(root: &Path, extra: &str) -> String {
    let folders = format!(
        "  rules_dir: {}\n  templates_dir: {}\n  relay_interval_ms: 50\n",
        root.join("rules").display(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/templates")
            .display()
    );
    match extra.split_once("notifications:\n") {
        Some((before, after)) => format!("{before}notifications:\n{folders}{after}\n"),
        None => format!("notifications:\n{folders}{extra}\n"),
    }
}

/// A connector file with `defaults` added for the keys it does not set itself.
fn with_defaults(yaml: &str, defaults: &[(&str, &str)]) -> String {
    let mut out = yaml.to_string();
    for (key, value) in defaults {
        if !yaml.lines().any(|l| l.starts_with(&format!("{key}:"))) {
            out.push_str(&format!("{key}: {value}\n"));
        }
    }
    out
}

/// Frames a message for MLLP.
pub fn frame(msg: &str) -> Vec<u8> {
    let mut v = vec![VT];
    v.extend_from_slice(msg.as_bytes());
    v.extend_from_slice(&[FS, CR]);
    v
}

/// Reads one MLLP frame (the ACK) from a stream, as text.
pub async fn read_frame(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut byte))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        out.push(byte[0]);
        if out.ends_with(&[FS, CR]) {
            let start = out.iter().position(|b| *b == VT)? + 1;
            return Some(String::from_utf8_lossy(&out[start..out.len() - 2]).into_owned());
        }
    }
}

/// Sends one message on a fresh connection and returns the ACK text.
pub async fn send(addr: SocketAddr, msg: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&frame(msg)).await.unwrap();
    read_frame(&mut s).await.expect("an ACK")
}

/// A field of a segment of an HL7 text (`MSA`, 1 → MSA-1).
pub fn field(text: &str, segment: &str, n: usize) -> String {
    text.split(['\r', '\n'])
        .find(|l| l.starts_with(segment))
        .and_then(|l| {
            let fields: Vec<&str> = l.split('|').collect();
            let idx = if segment == "MSH" { n - 1 } else { n };
            fields.get(idx).map(|s| s.to_string())
        })
        .unwrap_or_default()
}

/// An ADT^A04 with the given control id, MRN and family name.
pub fn adt(control_id: &str, mrn: &str, family: &str) -> String {
    format!(
        "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A04|20261120083000\r\
         PID|1||{mrn}^^^CLINIC^MR||{family}^Lan^Thi||19850307|F|||1 Main St^^Hanoi^^100000^VN^H||0903123456^PRN^CP\r"
    )
}

/// GET a JSON document from the API.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let resp = http().get(url).send().await.expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// The corpus folder, or `None` (with a loud message) when it is absent and not required.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var("CAREHUB_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.is_dir() {
        return Some(dir);
    }
    if required() {
        panic!(
            "CAREHUB_REQUIRE_SERVICES=1 but the corpus folder {} is missing",
            dir.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPED: corpus folder {} not found (set CAREHUB_CORPUS_DIR) !!!\n",
        dir.display()
    );
    None
}

/// True when services and data must be present (CI).
pub fn required() -> bool {
    std::env::var("CAREHUB_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Waits until `check` holds, polling; panics with `what` after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The message-log rows with a status, newest first.
pub async fn messages_with(
    store: &carehub::store::Store,
    status: carehub::store::MessageStatus,
) -> Vec<carehub::store::MessageSummary> {
    store
        .messages(&carehub::store::MessageFilter {
            status: Some(status),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("the message log answers")
}

/// The admin token every test hub is given (as `api.auth.admin_token`, from the environment).
pub const ADMIN_TOKEN: &str = "chk_test-admin-token-for-carehub-integration-tests";

/// An HTTP client for the tests, sending the test hubs' admin token. reqwest is built with
/// rustls and no built-in crypto provider (the hub installs ring's); the first client installs
/// it for the test process.
pub fn http() -> reqwest::Client {
    http_as(ADMIN_TOKEN)
}

/// An HTTP client sending `token` as its bearer token.
pub fn http_as(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("a header value"),
    );
    anonymous_http_builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// An HTTP client with no credential.
pub fn anonymous_http() -> reqwest::Client {
    anonymous_http_builder().build().expect("an HTTP client")
}

fn anonymous_http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Every file under `dir` (recursively, sorted by path) that `keep` accepts.
pub fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for p in entries.filter_map(Result::ok).map(|e| e.path()) {
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
