//! What audited reads of patient data cost ingest: MLLP ingest on the shipped defaults (SQLite,
//! matching on) while clinicians read patients through the API, each read audited (a chained
//! row committed before the answer leaves).
//!
//! Each round runs two hubs one after the other, alternated: ingest alone, then the same ingest
//! with `BENCH_READS_PER_SEC` audited reads a second (`max`: as fast as 8 readers go).
//!
//!     cargo bench --bench audited_reads
//!     BENCH_ROUNDS=3 BENCH_READS_PER_SEC=200 BENCH_MESSAGES=20000 cargo bench --bench audited_reads
//!
//! Prints ingest messages/s and ACK latency, reads/s with their latency, and audit rows written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The allocator the `carehub` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/mllp.rs"]
mod mllp;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ADMIN: &str = "chk_bench-admin-token-for-the-audited-reads-bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads a second: `None` for as fast as the readers go.
fn reads_per_sec() -> Option<f64> {
    match std::env::var("BENCH_READS_PER_SEC").as_deref() {
        Ok("max") => None,
        Ok(v) => v.parse().ok().or(Some(200.0)),
        Err(_) => Some(200.0),
    }
}

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 2);
    let total = env_usize("BENCH_MESSAGES", 20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for round in 0..rounds {
        rt.block_on(run_once(round * 2, total, false));
        rt.block_on(run_once(round * 2 + 1, total, true));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn run_once(run: usize, total: usize, reading: bool) {
    let senders = 8;
    let per_sender = total / senders;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("connectors")).unwrap();
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(
        root.join("carehub.yaml"),
        format!(
            "store: {{url: \"sqlite://{}\"}}\napi: {{listen: \"127.0.0.1:0\", auth: {{admin_token: \"${{BENCH_ADMIN}}\", admin_token_file: {}}}}}\nconnectors_dir: {}\nmappings_dir: {}/mappings\nlog: {{level: warn}}\nnotifications: {{enabled: false, rules_dir: {}}}\n",
            root.join("bench.db").display(),
            root.join("admin.token").display(),
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
    let env = [("BENCH_ADMIN".to_string(), ADMIN.to_string())];
    let settings = carehub::config::load_with_env(&root.join("carehub.yaml"), &env).expect("bench config");
    let hub = carehub::app::start(settings).await.expect("hub");
    let addr = hub.mllp_addr("mllp").expect("mllp address");
    let api = format!("http://{}", hub.api_addr.expect("the API"));

    // Persons to read: the first sender's first messages, sent before the clock starts.
    let seed = 500.min(per_sender);
    {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut buf = Vec::new();
        for i in 0..seed {
            s.write_all(&mllp::message(run, 0, i)).await.expect("send");
            mllp::read_ack(&mut s, &mut buf).await;
        }
    }
    let mut ids = Vec::new();
    for i in 0..seed {
        let mrn = format!("MRN{run}S0X{i}");
        if let Some(p) = hub.store.find_persons(&mrn, None).await.expect("look-up").pop() {
            ids.push(p.id);
        }
    }
    let ids = Arc::new(ids);
    let (_, clinician) =
        carehub::api::tokens::create(&hub.store, "bench", carehub::api::Role::Clinician, None)
            .await
            .expect("a token");
    let audit_before = hub
        .store
        .audit_page(0, i64::MAX)
        .await
        .map(|r| r.len())
        .unwrap_or(0);

    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    if reading {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let n_readers = 8;
        let pause = reads_per_sec().map(|r| Duration::from_secs_f64(n_readers as f64 / r));
        for r in 0..n_readers {
            let (client, api, ids, stop, token) = (
                client.clone(),
                api.clone(),
                ids.clone(),
                stop.clone(),
                clinician.clone(),
            );
            readers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut k = r;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let id = &ids[k % ids.len()];
                    k += 7;
                    let t = Instant::now();
                    let resp = client
                        .get(format!("{api}/api/v1/patients/{id}"))
                        .bearer_auth(&token)
                        .header("X-Purpose-Of-Use", "treatment")
                        .send()
                        .await
                        .expect("the API answers");
                    assert_eq!(resp.status().as_u16(), 200);
                    let _ = resp.bytes().await;
                    latencies.push(t.elapsed());
                    if let Some(p) = pause {
                        next += p;
                        tokio::time::sleep_until(next.into()).await;
                    }
                }
                latencies
            }));
        }
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..senders {
        // The first sender's seed messages are already in: it goes on after them.
        let from = if sender == 0 { seed } else { 0 };
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).ok();
            let mut buf = Vec::new();
            let mut latencies = Vec::with_capacity(per_sender);
            for i in from..per_sender {
                let t = Instant::now();
                s.write_all(&mllp::message(run, sender, i)).await.expect("send");
                mllp::read_ack(&mut s, &mut buf).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut acks: Vec<Duration> = Vec::new();
    for t in tasks {
        acks.extend(t.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut reads: Vec<Duration> = Vec::new();
    for r in readers {
        reads.extend(r.await.expect("reader"));
    }
    acks.sort();
    reads.sort();
    let audit_rows = hub
        .store
        .audit_page(0, i64::MAX)
        .await
        .map(|r| r.len())
        .unwrap_or(0)
        - audit_before;
    println!(
        "audited_reads: reads={} ingest={:.0} msg/s ack_p50={:.2}ms ack_p99={:.2}ms reads_done={} reads_per_s={:.0} read_p50={:.2}ms read_p99={:.2}ms audit_rows={audit_rows} messages={} elapsed={:.2}s",
        match (reading, reads_per_sec()) {
            (false, _) => "off".to_string(),
            (true, None) => "max".to_string(),
            (true, Some(r)) => format!("{r:.0}/s"),
        },
        acks.len() as f64 / elapsed.as_secs_f64(),
        percentile(&acks, 0.50),
        percentile(&acks, 0.99),
        reads.len(),
        reads.len() as f64 / elapsed.as_secs_f64(),
        percentile(&reads, 0.50),
        percentile(&reads, 0.99),
        acks.len(),
        elapsed.as_secs_f64(),
    );
    hub.shutdown().await;
}
