//! Search on a large store: the message log and patient look-ups through the HTTP API, with a
//! token, on a store of 1,000,000 messages and 100,000 persons (the closing numbers).
//!
//!     cargo bench --bench message_search                                  # target/bench-search/search.db
//!     cargo bench --bench message_search -- --store /data/big.db --calls 100
//!     cargo bench --bench message_search -- --store postgres://postgres@127.0.0.1/bench
//!     BENCH_MESSAGES=200000 BENCH_PERSONS=20000 cargo bench --bench message_search
//!
//! A store that holds no message yet is seeded first with direct SQL (`INSERT … SELECT` over a
//! generated series: seconds, not hours): persons with a golden record, a source record and an
//! MRN each; messages of four connectors over 81 days (ADT, ORU, SIU, FHIR; about 0.1 % in
//! error, 1 % unmapped, 2 % duplicates), each processed one linked to a person. A store that
//! already holds messages is reused as it is, so console pages can be timed on it later.
//!
//! Then a hub is started on the store (the API only) and each search is called `--calls` times
//! after three warm-up calls; it prints p50, p95 and max in milliseconds and the rows answered.
//! The goal is under 200 ms for each (docs/benchmarks.md).

use std::time::{Duration, Instant};

/// The allocator the `carehub` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN: &str = "chk_bench-admin-token-for-the-message-search-bench";

/// Seconds between two seeded messages (1,000,000 of them span 81 days).
const STEP_SECS: i64 = 7;

struct Args {
    store: String,
    messages: i64,
    persons: i64,
    calls: usize,
}

fn args() -> Args {
    let env = |name: &str, default: i64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut a = Args {
        store: format!("{}/target/bench-search/search.db", env!("CARGO_MANIFEST_DIR")),
        messages: env("BENCH_MESSAGES", 1_000_000),
        persons: env("BENCH_PERSONS", 100_000),
        calls: env("BENCH_CALLS", 50) as usize,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--store" => a.store = it.next().expect("--store PATH or URL"),
            "--messages" => a.messages = it.next().and_then(|v| v.parse().ok()).expect("--messages N"),
            "--persons" => a.persons = it.next().and_then(|v| v.parse().ok()).expect("--persons N"),
            "--calls" => a.calls = it.next().and_then(|v| v.parse().ok()).expect("--calls N"),
            _ => {} // `cargo bench` passes --bench
        }
    }
    a
}

fn main() {
    let a = args();
    let url = if a.store.starts_with("postgres") {
        a.store.clone()
    } else {
        if let Some(dir) = std::path::Path::new(&a.store).parent() {
            std::fs::create_dir_all(dir).expect("the store's folder");
        }
        format!("sqlite://{}", a.store)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&url, &a));
}

async fn run(url: &str, a: &Args) {
    let config = carehub::config::StoreConfig {
        url: url.to_string(),
        ..Default::default()
    };
    // Migrated by the hub's own code; seeded only when empty.
    let store = carehub::store::Store::open(&config)
        .await
        .expect("the store opens");
    let held = store
        .messages(&carehub::store::MessageFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("the message log")
        .first()
        .map(|m| m.id)
        .unwrap_or(0);
    store.close().await;
    if held == 0 {
        let started = Instant::now();
        seed(url, a.messages, a.persons).await;
        println!(
            "seeded {} messages and {} persons in {:.1} s",
            a.messages,
            a.persons,
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing the store ({held} messages)");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    for d in ["connectors", "rules"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(
        root.join("carehub.yaml"),
        format!(
            "store: {{url: \"{url}\"}}\napi: {{listen: \"127.0.0.1:0\", auth: {{admin_token: \"${{BENCH_ADMIN}}\", admin_token_file: {}}}}}\nconnectors_dir: {}\nmappings_dir: {}/mappings\nlog: {{level: warn}}\nnotifications: {{enabled: false, rules_dir: {}}}\n",
            root.join("admin.token").display(),
            root.join("connectors").display(),
            env!("CARGO_MANIFEST_DIR"),
            root.join("rules").display(),
        ),
    )
    .unwrap();
    let env = [("BENCH_ADMIN".to_string(), ADMIN.to_string())];
    let settings = carehub::config::load_with_env(&root.join("carehub.yaml"), &env).expect("bench config");
    let started = Instant::now();
    let hub = carehub::app::start(settings).await.expect("hub");
    println!(
        "hub started on the store in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let api = format!("http://{}", hub.api_addr.expect("the API"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {ADMIN}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");

    // Values that exist in the store: taken from it, not assumed.
    let newest = first(&client, &format!("{api}/api/v1/messages?limit=1")).await;
    let newest_id = newest["id"].as_i64().unwrap_or(1);
    let middle = first(
        &client,
        &format!("{api}/api/v1/messages?limit=1&before_id={}", newest_id / 2),
    )
    .await;
    let control = middle["control_id"].as_str().unwrap_or("B1").to_string();
    let at: jiff::Timestamp = middle["received_at"]
        .as_str()
        .unwrap_or("2026-01-01T00:00:00Z")
        .parse()
        .unwrap();
    let day = (
        at - jiff::SignedDuration::from_hours(12),
        at + jiff::SignedDuration::from_hours(12),
    );
    let mrn = format!("MRN{}", a.persons / 2);
    let enc = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();

    let searches: Vec<(&str, String)> = vec![
        ("messages, unfiltered", "/api/v1/messages?limit=100".into()),
        (
            "messages, unfiltered, page 2",
            format!("/api/v1/messages?limit=100&before_id={}", newest_id - 100),
        ),
        (
            "messages, status=error",
            "/api/v1/messages?status=error&limit=100".into(),
        ),
        (
            "messages, status=unmapped",
            "/api/v1/messages?status=unmapped&limit=100".into(),
        ),
        (
            "messages, connector=lab",
            "/api/v1/messages?connector=lab&limit=100".into(),
        ),
        (
            "messages, connector=lab&type=ORU^R01",
            "/api/v1/messages?connector=lab&type=ORU%5ER01&limit=100".into(),
        ),
        (
            "messages, connector=emr&type=ADT",
            "/api/v1/messages?connector=emr&type=ADT&limit=100".into(),
        ),
        (
            "messages, type=SIU^S15 (rare)",
            "/api/v1/messages?type=SIU%5ES15&limit=100".into(),
        ),
        (
            "messages, connector=lab&status=error",
            "/api/v1/messages?connector=lab&status=error&limit=100".into(),
        ),
        (
            "messages, control_id",
            format!("/api/v1/messages?control_id={control}"),
        ),
        (
            "messages, patient identifier",
            format!("/api/v1/messages?patient_identifier={mrn}&limit=100"),
        ),
        (
            "messages, one day (time range)",
            format!(
                "/api/v1/messages?received_from={}&received_to={}&limit=100",
                enc(day.0),
                enc(day.1)
            ),
        ),
        (
            "messages, one day, status=error",
            format!(
                "/api/v1/messages?received_from={}&received_to={}&status=error&limit=100",
                enc(day.0),
                enc(day.1)
            ),
        ),
        (
            "messages, one day onwards (wide range)",
            format!("/api/v1/messages?received_from={}&limit=100", enc(day.0)),
        ),
        (
            "messages, wide range, status=error",
            format!(
                "/api/v1/messages?received_from={}&status=error&limit=100",
                enc(day.0)
            ),
        ),
        (
            "messages, type=ORU&status=unmapped",
            "/api/v1/messages?type=ORU&status=unmapped&limit=100".into(),
        ),
        (
            "patients, by identifier",
            format!("/api/v1/patients?identifier={mrn}"),
        ),
        ("patients, by name", "/api/v1/patients?name=Nguyen".into()),
    ];
    println!(
        "\n{:<42} {:>8} {:>8} {:>8} {:>6}",
        "search", "p50 ms", "p95 ms", "max ms", "rows"
    );
    for (name, path) in &searches {
        let url = format!("{api}{path}");
        let probe = client.get(&url).send().await.expect("the API answers");
        if !probe.status().is_success() {
            println!("{name:<42} not served here ({})", probe.status());
            continue;
        }
        for _ in 0..3 {
            call(&client, &url).await;
        }
        let mut times = Vec::with_capacity(a.calls);
        let mut rows = 0;
        for _ in 0..a.calls {
            let (took, n) = call(&client, &url).await;
            times.push(took);
            rows = n;
        }
        times.sort();
        println!(
            "{name:<42} {:>8.1} {:>8.1} {:>8.1} {:>6}",
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
            ms(*times.last().unwrap()),
            rows
        );
    }
    hub.shutdown().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn first(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let body: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
    body["items"][0].clone()
}

/// One call: its time (until the whole body is read) and the rows it answered.
async fn call(client: &reqwest::Client, url: &str) -> (Duration, usize) {
    let started = Instant::now();
    let resp = client.get(url).send().await.expect("the API answers");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let body: serde_json::Value = resp.json().await.expect("JSON");
    let took = started.elapsed();
    (took, body["items"].as_array().map_or(0, Vec::len))
}

/// The SQL of each backend for what differs: a number series, JSON builders, times, bytes.
struct Dialect {
    postgres: bool,
}

impl Dialect {
    /// `FROM` a series of `i` from `from` to `to`.
    fn series(&self, from: i64, to: i64) -> String {
        if self.postgres {
            format!("FROM generate_series({from}::bigint, {to}::bigint) AS n(i)")
        } else {
            format!(
                "FROM (WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) SELECT i FROM n) AS n"
            )
        }
    }
    fn obj(&self) -> &'static str {
        if self.postgres {
            "json_build_object"
        } else {
            "json_object"
        }
    }
    fn arr(&self) -> &'static str {
        if self.postgres {
            "json_build_array"
        } else {
            "json_array"
        }
    }
    /// RFC 3339 UTC text of epoch seconds `expr`.
    fn time(&self, expr: &str) -> String {
        if self.postgres {
            format!("to_char(to_timestamp({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        } else {
            format!("strftime('%Y-%m-%dT%H:%M:%SZ', {expr}, 'unixepoch')")
        }
    }
    fn bytes(&self, expr: &str) -> String {
        if self.postgres {
            format!("convert_to({expr}, 'UTF8')")
        } else {
            format!("CAST({expr} AS BLOB)")
        }
    }
    fn cr(&self) -> &'static str {
        if self.postgres { "chr(13)" } else { "char(13)" }
    }
}

async fn seed(url: &str, messages: i64, persons: i64) {
    let d = Dialect {
        postgres: url.starts_with("postgres"),
    };
    let statements = seed_statements(&d, messages, persons);
    let started = Instant::now();
    macro_rules! run_all {
        ($conn:expr) => {{
            let mut conn = $conn;
            for (label, s) in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("seeding {label}: {e}"));
                println!("  {label} ({:.0} s)", started.elapsed().as_secs_f64());
            }
        }};
    }
    use sqlx::Connection;
    if d.postgres {
        run_all!(sqlx::PgConnection::connect(url).await.expect("seed connection"));
    } else {
        run_all!(
            sqlx::SqliteConnection::connect(url)
                .await
                .expect("seed connection")
        );
    }
}

/// The seeding statements, each with what it writes.
fn seed_statements(d: &Dialect, messages: i64, persons: i64) -> Vec<(String, String)> {
    let base = jiff::Timestamp::now().as_second() - messages * STEP_SECS;
    let family = "CASE i % 8 WHEN 0 THEN 'Nguyen' WHEN 1 THEN 'Tran' WHEN 2 THEN 'Le' WHEN 3 THEN 'Pham' \
                  WHEN 4 THEN 'Hoang' WHEN 5 THEN 'Ivanova' WHEN 6 THEN 'Wang' ELSE 'Smith' END";
    let given = "CASE (i / 8) % 6 WHEN 0 THEN 'Lan' WHEN 1 THEN 'Minh' WHEN 2 THEN 'Anna' WHEN 3 THEN 'Wei' \
                 WHEN 4 THEN 'John' ELSE 'Mai' END";
    let birth =
        "'19' || CAST(40 + i % 60 AS TEXT) || '-0' || CAST(1 + i % 9 AS TEXT) || '-1' || CAST(i % 9 AS TEXT)";
    let profile = format!(
        "CAST({obj}('identifiers', {arr}({obj}('system', 'CLINIC', 'value', 'MRN' || CAST(i AS TEXT), 'type', 'MR')), \
         'names', {arr}({obj}('family', {family}, 'given', {arr}({given}))), 'birth_date', {birth}, \
         'sex', CASE i % 2 WHEN 0 THEN 'female' ELSE 'male' END) AS TEXT)",
        obj = d.obj(),
        arr = d.arr(),
    );
    let at = d.time(&base.to_string());
    let statements = [
        format!(
            "INSERT INTO persons (id, profile, created_at, updated_at) SELECT 'bench-p' || CAST(i AS TEXT), {profile}, {at}, {at} {}",
            d.series(1, persons)
        ),
        format!(
            "INSERT INTO source_records (id, source_system, source_key, person_id, patch, last_message_id, created_at, \
             updated_at, link_method) SELECT i, 'EMR^HOSP', 'CLINIC|MRN' || CAST(i AS TEXT), 'bench-p' || CAST(i AS TEXT), \
             {profile}, NULL, {at}, {at}, 'identifier' {}",
            d.series(1, persons)
        ),
        format!(
            "INSERT INTO identifiers (system, value, kind, person_id, source_record_id, created_at) \
             SELECT 'CLINIC', 'MRN' || CAST(i AS TEXT), 'MR', 'bench-p' || CAST(i AS TEXT), i, {at} {}",
            d.series(1, persons)
        ),
    ];
    let mut out: Vec<(String, String)> = ["persons", "source records", "identifiers"]
        .iter()
        .map(|l| l.to_string())
        .zip(statements)
        .collect();
    // Messages, in chunks: the four connectors interleaved as a clinic's feeds are.
    let connector = "CASE WHEN i % 10 < 5 THEN 'emr' WHEN i % 10 < 8 THEN 'lab' WHEN i % 10 = 8 THEN 'sched' ELSE 'fhir' END";
    let mtype = "CASE WHEN i % 10 < 5 THEN (CASE i % 3 WHEN 0 THEN 'ADT^A01' WHEN 1 THEN 'ADT^A04' ELSE 'ADT^A08' END) \
                 WHEN i % 10 < 8 THEN 'ORU^R01' WHEN i % 10 = 8 THEN (CASE WHEN i % 500 = 8 THEN 'SIU^S15' ELSE 'SIU^S12' END) \
                 ELSE (CASE i % 2 WHEN 0 THEN 'Patient' ELSE 'Observation' END) END";
    let status = "CASE WHEN i % 997 = 0 THEN 'error' WHEN i % 101 = 0 THEN 'unmapped' WHEN i % 53 = 0 THEN 'duplicate' \
                  ELSE 'processed' END";
    let person = format!("'bench-p' || CAST(1 + (i * 7919) % {persons} AS TEXT)");
    let mrn = format!("'MRN' || CAST(1 + (i * 7919) % {persons} AS TEXT)");
    let cr = d.cr();
    let raw = format!(
        "'MSH|^~\\&|' || UPPER({connector}) || '|HOSP|CAREHUB|CLINIC|20240105083000||' || {mtype} || '|B' || CAST(i AS TEXT) \
         || '|P|2.5.1' || {cr} || 'PID|1||' || {mrn} || '^^^CLINIC^MR||' || 'Nguyen^Lan||19850307|F|||1 Main St^^Hanoi^^100000^VN^H||0903123456^PRN^CP' \
         || {cr} || 'PV1|1|O|CLINIC^101^A|||||||MED' || {cr} || 'OBX|1|NM|2093-3^Cholesterol^LN||5.6|mmol/L|<5.2|H|||F' || {cr}"
    );
    let chunk = 100_000;
    let mut from = 1;
    while from <= messages {
        let to = (from + chunk - 1).min(messages);
        let insert = format!(
            "INSERT INTO messages (id, connector, origin, received_at, sender, control_id, message_type, charset, \
             content_hash, raw, status, error, warnings, mapping, person_id, duplicate_of) \
             SELECT i, {connector}, '10.0.0.' || CAST(i % 7 AS TEXT), {time}, UPPER({connector}) || '^HOSP', \
             'B' || CAST(i AS TEXT), {mtype}, 'UNICODE UTF-8', 'h' || CAST(i AS TEXT), {raw}, {status}, \
             CASE WHEN i % 997 = 0 THEN 'PID-7: not a date' WHEN i % 101 = 0 THEN 'no mapping for message type' END, \
             NULL, CASE WHEN i % 997 <> 0 AND i % 101 <> 0 THEN 'bench' END, \
             CASE WHEN i % 997 <> 0 AND i % 101 <> 0 THEN {person} END, \
             CASE WHEN i % 997 <> 0 AND i % 101 <> 0 AND i % 53 = 0 THEN i - 1 END {series}",
            time = d.time(&format!("{base} + i * {STEP_SECS}")),
            raw = d.bytes(&raw),
            series = d.series(from, to),
        );
        out.push((format!("messages {to}/{messages}"), insert));
        from = to + 1;
    }
    let counters = "INSERT INTO connectors (name, kind, state, received, processed, errors, duplicates, unmapped, \
         last_message_at, updated_at) \
         SELECT connector, 'mllp', 'stopped', COUNT(*), \
         SUM(CASE WHEN status = 'processed' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status = 'duplicate' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'unmapped' THEN 1 ELSE 0 END), \
         MAX(received_at), MAX(received_at) FROM messages GROUP BY connector";
    out.push(("connector counters".into(), counters.into()));
    if d.postgres {
        // What autovacuum would have done on a store that grew to this size.
        out.push(("ANALYZE".into(), "ANALYZE".into()));
    }
    out
}
