//! MLLP ingest benchmark: N concurrent senders over loopback into a hub on the SQLite store.
//!
//! It runs twice by default: once with senders that behave like most real ones (each sends a
//! message and waits for its ACK before the next: window 1), then with batch-minded senders
//! that keep 16 messages in flight on their connection (MLLP ACKs come back in order).
//! `BENCH_WINDOW=N` runs one of them, with N in flight per sender. Every
//! message is a distinct ADT^A04 (a new person), so each ACK waits for the message-log row, the
//! person, its identifiers and its source record to be committed.
//!
//!     cargo bench --bench mllp_throughput
//!     BENCH_SENDERS=8 BENCH_WINDOW=16 BENCH_MESSAGES=80000 cargo bench --bench mllp_throughput
//!
//! `BENCH_STORE_URL=postgres://…` runs it on PostgreSQL (use an empty database or schema).
//! `BENCH_MATCHING=on` turns probabilistic matching on (docs/identity.md); by default the hub
//! links by identifiers only, the ingest path this benchmark measures.
//! `BENCH_STORE_KEY=…` (32+ characters) sets `store.encryption_key`: SQLCipher on SQLite, sealed
//! bodies on PostgreSQL — run with and without it, alternated, for the cost of encryption.
//! `BENCH_STORE_DIR=DIR` keeps the store and its `carehub.yaml` in DIR (for the backup and
//! restore figures: docs/security.md#encryption-at-rest-key-rotation-backup-and-restore) instead of a temporary folder.
//! Prints messages/s and ACK latency p50/p99/max.

use std::time::{Duration, Instant};

/// The allocator the `carehub` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/mllp.rs"]
mod mllp;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let senders = env_usize("BENCH_SENDERS", 8);
    let total = env_usize("BENCH_MESSAGES", 40_000);
    let matching = std::env::var("BENCH_MATCHING").is_ok_and(|v| v == "on" || v == "1" || v == "true");
    let windows = match std::env::var("BENCH_WINDOW") {
        Ok(_) => vec![env_usize("BENCH_WINDOW", 1).max(1)],
        Err(_) => vec![1, 16],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (run, window) in windows.into_iter().enumerate() {
        rt.block_on(run_once(run, senders, window, total, matching));
    }
}

/// One run on a hub of its own: `senders` connections, each keeping `window` messages in flight.
async fn run_once(run: usize, senders: usize, window: usize, total: usize, matching: bool) {
    let per_sender = total / senders;
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let kept = std::env::var("BENCH_STORE_DIR")
            .ok()
            .map(std::path::PathBuf::from);
        let root = kept.as_deref().unwrap_or(dir.path());
        let key = std::env::var("BENCH_STORE_KEY")
            .map(|k| format!(", encryption_key: \"{k}\""))
            .unwrap_or_default();
        std::fs::create_dir_all(root.join("connectors")).unwrap();
        // No notification rules: this measures ingest.
        std::fs::create_dir_all(root.join("rules")).unwrap();
        std::fs::write(
            root.join("carehub.yaml"),
            format!(
                "store: {{url: \"{}\"{key}}}\napi: {{enabled: false}}\nconnectors_dir: {}\nmappings_dir: {}/mappings\nlog: {{level: warn}}\nidentity: {{matching: {matching}}}\nnotifications: {{enabled: false, rules_dir: {}}}\n",
                std::env::var("BENCH_STORE_URL")
                    .unwrap_or_else(|_| format!("sqlite://{}", root.join("bench.db").display())),
                root.join("connectors").display(),
                env!("CARGO_MANIFEST_DIR"),
                root.join("rules").display(),
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("connectors/mllp.yaml"),
            "type: mllp\nname: mllp\nlisten: 127.0.0.1:0\n",
        )
        .unwrap();
        let settings = carehub::config::load_with_env(&root.join("carehub.yaml"), &[]).expect("bench config");
        let hub = carehub::app::start(settings).await.expect("hub");
        let addr = hub.mllp_addr("mllp").expect("mllp address");
        let persons_before = hub.store.person_count().await.unwrap_or(0);

        let started = Instant::now();
        let mut tasks = Vec::new();
        for sender in 0..senders {
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).ok();
                let mut buf = Vec::new();
                let mut latencies = Vec::with_capacity(per_sender);
                let mut refused = 0usize;
                let mut in_flight = std::collections::VecDeque::with_capacity(window);
                let mut next = 0;
                while next < per_sender || !in_flight.is_empty() {
                    while next < per_sender && in_flight.len() < window {
                        s.write_all(&mllp::message(run, sender, next))
                            .await
                            .expect("send");
                        in_flight.push_back(Instant::now());
                        next += 1;
                    }
                    if !mllp::read_ack(&mut s, &mut buf).await {
                        refused += 1;
                    }
                    if let Some(sent) = in_flight.pop_front() {
                        latencies.push(sent.elapsed());
                    }
                }
                (latencies, refused)
            }));
        }
        let mut all: Vec<Duration> = Vec::with_capacity(total);
        let mut refused = 0;
        for t in tasks {
            let (l, r) = t.await.expect("sender");
            all.extend(l);
            refused += r;
        }
        let elapsed = started.elapsed();
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        let persons = hub.store.person_count().await.unwrap_or(-1) - persons_before;
        println!(
            "mllp_throughput: senders={senders} window={window} matching={matching} encrypted={} messages={} refused={refused} persons={persons} elapsed={:.2}s rate={:.0} msg/s ack_p50={:.2}ms ack_p99={:.2}ms ack_max={:.2}ms",
            !key.is_empty(),
            all.len(),
            elapsed.as_secs_f64(),
            all.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        hub.shutdown().await;
    }
}
