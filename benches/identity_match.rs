//! Matching speed at clinic-network scale: incoming records against a million stored persons.
//!
//! `cargo bench --bench identity_match [-- --persons N] [--records M] [--backend sqlite|postgres|both]
//! [--link BITS] [--review BITS]`
//!
//! 1. Loads N generated persons (default 1,000,000; `people.rs`) as an EMR would send them,
//!    through the store's ingest batches, then indexes their blocking keys as the hub does at
//!    start (`backfill_match_keys`). The loaded store is kept (SQLite under
//!    `target/bench-identity/`, PostgreSQL in the database `carehub_bench_identity_<N>`, or
//!    `CAREHUB_BENCH_PG`) and reused by the next run when it holds N persons.
//! 2. Matches M incoming records (default 100,000) — half noisy copies of stored persons as a
//!    lab would send them, half persons not stored — one at a time, through
//!    `Store::match_patch`: the ingest path's own look-ups, blocking and scoring, with name
//!    frequencies counted from the store as the hub does. Nothing is written.
//! 3. Prints per-record p50/p90/p99/max, the total, and what the matcher decided (copies
//!    linked to the right person, missed, or sent to review; new persons linked wrongly).
//!
//! The per-record time on SQLite is the call on the calling thread; on PostgreSQL it includes
//! the round trips to the local server.

#[path = "identity_match/people.rs"]
mod people;

// As the hub's binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use carehub::config::StoreConfig;
use carehub::identity::{IdentityConfig, Matcher};
use carehub::store::{Disposition, MatchResult, NewRecord, Store};

struct Args {
    persons: u64,
    records: u64,
    backends: Vec<&'static str>,
    /// Threshold overrides (bits), to weigh a model at this scale.
    link: Option<f64>,
    review: Option<f64>,
}

fn args() -> Args {
    let mut a = Args {
        persons: 1_000_000,
        records: 100_000,
        backends: vec!["sqlite", "postgres"],
        link: None,
        review: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match arg.as_str() {
            "--persons" => a.persons = value().parse().expect("--persons N"),
            "--records" => a.records = value().parse().expect("--records N"),
            "--link" => a.link = Some(value().parse().expect("--link BITS")),
            "--review" => a.review = Some(value().parse().expect("--review BITS")),
            "--backend" => {
                a.backends = match value().as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    _ => vec!["sqlite", "postgres"],
                }
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

#[tokio::main]
async fn main() {
    let a = args();
    println!(
        "identity_match bench: {} incoming records against {} stored persons",
        a.records, a.persons
    );
    for backend in &a.backends {
        let config = match *backend {
            "sqlite" => {
                let dir = PathBuf::from(
                    std::env::var("CAREHUB_BENCH_DIR").unwrap_or_else(|_| "target/bench-identity".into()),
                );
                std::fs::create_dir_all(&dir).expect("bench directory");
                StoreConfig {
                    url: format!("sqlite://{}/persons-{}.db", dir.display(), a.persons),
                    ..StoreConfig::default()
                }
            }
            _ => match postgres_url(a.persons).await {
                Some(url) => StoreConfig {
                    url,
                    ..StoreConfig::default()
                },
                None => {
                    println!("postgres: not reachable at 127.0.0.1:5432, skipped");
                    continue;
                }
            },
        };
        run(backend, &config, &a).await;
    }
}

/// The bench database on the local server, created when missing.
async fn postgres_url(persons: u64) -> Option<String> {
    if let Ok(url) = std::env::var("CAREHUB_BENCH_PG") {
        return Some(url);
    }
    tokio::net::TcpStream::connect("127.0.0.1:5432").await.ok()?;
    let admin = "postgres://postgres@127.0.0.1:5432/postgres";
    let pool = sqlx::PgPool::connect(admin).await.ok()?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(format!("carehub_bench_identity_{persons}"))
        .fetch_optional(&pool)
        .await
        .ok()?;
    if exists.is_none() {
        // The name is built from a number only.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE carehub_bench_identity_{persons}"
        )))
        .execute(&pool)
        .await
        .ok()?;
    }
    Some(format!(
        "postgres://postgres@127.0.0.1:5432/carehub_bench_identity_{persons}"
    ))
}

async fn run(backend: &str, config: &StoreConfig, a: &Args) {
    println!("\n== {backend}");
    load(config, a.persons).await;

    // As the hub starts: matching on, name frequencies counted from the store.
    let store = Store::open(config).await.expect("store");
    let mut identity = IdentityConfig::default();
    let t = &mut identity.model.thresholds;
    (t.link, t.review) = (a.link.unwrap_or(t.link), a.review.unwrap_or(t.review));
    let sample = store
        .sample_patches(identity.model.term_frequency.sample as i64)
        .await
        .expect("sample");
    let persons = store.person_count().await.expect("count") as u64;
    let matcher = Matcher::new(&identity)
        .expect("matcher")
        .with_name_frequencies(&sample);
    // As the hub does at start: thresholds for the store's size.
    let (matcher, shift) = matcher.with_store_size(persons);
    let t = matcher.model.thresholds();
    println!(
        "thresholds for {persons} persons: link {:.2}, review {:.2} bits (+{shift:.2})",
        t.link, t.review
    );
    let store = store.with_matcher(matcher);

    let mut times = Vec::with_capacity(a.records as usize);
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..a.records {
        // Even: a copy of a stored person; odd: someone not stored (numbered past the store).
        let (patch, truth) = if i % 2 == 0 {
            let n = people::Rng::new(i).below(a.persons);
            (people::noisy_copy(n, i), Some(n))
        } else {
            (people::noisy_copy(a.persons + i, i), None)
        };
        let t = Instant::now();
        let result = match store.match_patch_blocking(&patch) {
            Some(r) => r,
            None => store.match_patch(&patch).await,
        }
        .expect("match");
        times.push(t.elapsed());
        tally.count(&store, &result, truth).await;
    }
    let total = started.elapsed();
    let sum: Duration = times.iter().sum();
    // The first tenth meets cold caches (the OS's page cache, SQLite's, the prepared
    // candidates); the rest is the steady state of a hub that has been running.
    let warm = times.len() / 10;
    for (label, part) in [
        ("all", &times[..]),
        ("first 10%", &times[..warm]),
        ("last 90%", &times[warm..]),
    ] {
        println!("matching, {label}: {}", percentiles(part));
    }
    println!(
        "total: {} records in {:.1} s of matching ({:.0} records/s); {:.1} s with the bench's own checks",
        times.len(),
        sum.as_secs_f64(),
        times.len() as f64 / sum.as_secs_f64(),
        total.as_secs_f64(),
    );
    tally.print();
}

/// p50, p90, p99, p99.9 and max of a set of times.
fn percentiles(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return "no records".into();
    }
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    format!(
        "{} records, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.1} ms",
        sorted.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

/// Loads `n` persons unless the store already holds them, then indexes blocking keys.
async fn load(config: &StoreConfig, n: u64) {
    let store = Store::open(config).await.expect("store");
    let have = store.person_count().await.expect("count") as u64;
    if have == n {
        println!("load: reusing the store's {n} persons");
    } else {
        assert_eq!(
            have, 0,
            "the bench store holds {have} persons, not {n}: remove it ({}) to load again",
            config.url
        );
        // Loaded with matching off (every record is a distinct person, as an EMR's own
        // records are); their keys are indexed below, as when matching is switched on.
        let off = IdentityConfig {
            matching: false,
            ..IdentityConfig::default()
        };
        let loader = store.clone().with_matcher(Matcher::new(&off).expect("matcher"));
        let started = Instant::now();
        let mut batch = Vec::with_capacity(1000);
        for i in 0..n {
            batch.push(record(i));
            if batch.len() == 1000 || i + 1 == n {
                loader.apply_batch(&batch).await.expect("load batch");
                batch.clear();
            }
            if (i + 1) % 100_000 == 0 {
                eprintln!("  loaded {} persons", i + 1);
            }
        }
        println!(
            "load: {n} persons in {:.1} s ({:.0}/s)",
            started.elapsed().as_secs_f64(),
            n as f64 / started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let indexed = store.backfill_match_keys().await.expect("backfill");
    if indexed > 0 {
        println!(
            "blocking keys: {indexed} records indexed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// Person `i` as the EMR's ingest record.
fn record(i: u64) -> NewRecord {
    NewRecord {
        connector: "bench".into(),
        origin: None,
        received_at: "2026-11-01T00:00:00Z".into(),
        sender: Some("EMR".into()),
        control_id: Some(format!("E{i}")),
        message_type: Some("ADT^A04".into()),
        charset: None,
        content_hash: format!("{i:064x}"),
        raw: Vec::new(),
        disposition: Disposition::Apply {
            mapping: "bench".into(),
            source_system: "EMR".into(),
            patch: Some(people::person(i)),
            records: Vec::new(),
            merge: None,
            warnings: Vec::new(),
        },
        cursor: None,
        match_input: None,
        reprocess: None,
    }
}

/// What the matcher decided, against the truth.
#[derive(Default)]
struct Tally {
    copies: u64,
    copies_linked: u64,
    copies_linked_wrong: u64,
    copies_review: u64,
    copies_missed: u64,
    others: u64,
    others_linked: u64,
    others_review: u64,
}

impl Tally {
    async fn count(&mut self, store: &Store, result: &MatchResult, truth: Option<u64>) {
        match truth {
            Some(n) => {
                self.copies += 1;
                match result.decision {
                    "match" | "identifier" => {
                        let right = store
                            .find_persons(&format!("E{n}"), Some("EMR"))
                            .await
                            .expect("find")
                            .first()
                            .is_some_and(|p| Some(&p.id) == result.person_id.as_ref());
                        if right {
                            self.copies_linked += 1;
                        } else {
                            self.copies_linked_wrong += 1;
                        }
                    }
                    "review" => self.copies_review += 1,
                    _ => self.copies_missed += 1,
                }
            }
            None => {
                self.others += 1;
                match result.decision {
                    "match" | "identifier" => self.others_linked += 1,
                    "review" => self.others_review += 1,
                    _ => {}
                }
            }
        }
    }

    fn print(&self) {
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
        println!(
            "copies of stored persons: {} — linked right {} ({:.2}%), linked wrong {} ({:.3}%), review {} ({:.2}%), missed {} ({:.2}%)",
            self.copies,
            self.copies_linked,
            pct(self.copies_linked, self.copies),
            self.copies_linked_wrong,
            pct(self.copies_linked_wrong, self.copies),
            self.copies_review,
            pct(self.copies_review, self.copies),
            self.copies_missed,
            pct(self.copies_missed, self.copies),
        );
        println!(
            "persons not stored: {} — linked wrongly {} ({:.3}%), review {} ({:.2}%)",
            self.others,
            self.others_linked,
            pct(self.others_linked, self.others),
            self.others_review,
            pct(self.others_review, self.others),
        );
    }
}
