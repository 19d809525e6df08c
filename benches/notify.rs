//! Notification throughput: outbox → queue → channel worker → a local HTTP provider.
//!
//! `cargo bench --bench notify [-- N]` inserts N notifications (default 20,000) into the outbox
//! of a fresh store, then runs the relay (publishing with confirms) and the `sms` channel's
//! worker against a local SMS gateway until every send is recorded as sent. It reports the
//! relay's publish rate and the end-to-end sends per second, for the embedded queue and —
//! when RabbitMQ answers at 127.0.0.1:5672 (or `CAREHUB_BENCH_AMQP`) — for RabbitMQ.
//! `CAREHUB_BENCH_ONLY=embedded` or `=rabbitmq` runs one of the two.

/// The allocator the `carehub` binary uses (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[path = "support/proc_cpu.rs"]
mod proc_cpu;

use carehub::channels::{Channel, ChannelConfig};
use carehub::config::{Document, StoreConfig};
use carehub::delivery::{NotifyConfig, Services, Templates, relay, worker};
use carehub::model::{ContactPoint, ContactSystem, Identifier, ProfilePatch};
use carehub::queue::{Queue, QueueConfig, QueueKind};
use carehub::rules::{RuleConfig, RuleSet};
use carehub::store::{Disposition, NewRecord, Store};

const RULE: &str = "name: notice\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [sms]\ntemplate: appointment-confirmation\nquiet_hours: false\n";

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    println!("notify bench: {n} notifications, outbox → queue → worker → local HTTP provider");
    // CAREHUB_BENCH_ONLY=embedded|rabbitmq runs one of the two (for profiling).
    let only = std::env::var("CAREHUB_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "embedded" {
        run("embedded (SQLite)", n, QueueConfig::default()).await;
    }
    if only == "embedded" {
        return;
    }
    let amqp = std::env::var("CAREHUB_BENCH_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    if tokio::net::TcpStream::connect("127.0.0.1:5672").await.is_ok()
        || std::env::var("CAREHUB_BENCH_AMQP").is_ok()
    {
        let config = QueueConfig {
            kind: QueueKind::Rabbitmq,
            url: Some(carehub::config::Secret::new(amqp)),
            prefix: format!("bench{}", uuid::Uuid::now_v7().simple()),
            // Four times the worker's 64 sends at once: acks gathered behind a send still in
            // flight do not shrink the window (docs/queue.md).
            prefetch: 256,
            ..Default::default()
        };
        run("RabbitMQ (store on SQLite)", n, config).await;
    } else {
        println!("RabbitMQ: not reachable at 127.0.0.1:5672, skipped");
    }
}

async fn run(label: &str, n: usize, queue_config: QueueConfig) {
    let dir = tempfile::tempdir().unwrap();
    let doc = Document::parse("notice.yaml", RULE).unwrap();
    let rule: RuleConfig = doc.deserialize().0.unwrap();
    let rules = RuleSet::new(&[rule], jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap());
    let store = Store::open(&StoreConfig {
        url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        ..Default::default()
    })
    .await
    .unwrap()
    .with_rules(rules.clone());
    // Sends spread over a thousand patients, as a morning's reminders are.
    let persons = patients(&store, 1000).await;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move || {
            let c = counter.clone();
            async move {
                let i = c.fetch_add(1, Ordering::Relaxed);
                axum::Json(serde_json::json!({"id": format!("gw-{i}")}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let value = serde_json::json!({"type": "sms_webhook", "url": url, "rate_per_sec": 1.0e9});
    let cdoc = Document::parse("carehub.yaml", "x: 1").unwrap();
    let channel = Channel::build(
        "sms",
        &ChannelConfig::from_value(&cdoc, &value, "channels.sms")
            .0
            .unwrap(),
        reqwest::Client::new(),
    )
    .unwrap();
    let mut problems = Vec::new();
    let templates = Templates::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates"),
        &mut problems,
    );
    let queue = match Queue::open(&queue_config, &store, &["sms".to_string()]).await {
        Ok(q) => q,
        Err(e) => {
            println!("{label}: cannot open the queue ({e}), skipped");
            return;
        }
    };
    let services = Arc::new(Services {
        store: store.clone(),
        queue,
        rules: Arc::new(rules),
        templates: Arc::new(templates),
        channels: BTreeMap::from([("sms".to_string(), Arc::new(channel))]),
        config: NotifyConfig {
            quiet_hours: None,
            concurrency: 64,
            ..Default::default()
        },
        queue_config,
    });

    // The ceiling: the channel's HTTP calls alone, as many at once as the worker makes.
    if label.starts_with("embedded") {
        let channel = services.channels["sms"].clone();
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..services.config.concurrency {
            let (channel, next) = (channel.clone(), next.clone());
            calls.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let m = carehub::channels::Outbound {
                        id: format!("direct-{i}"),
                        to: "+84900000000".into(),
                        subject: None,
                        body: "Nhắc lịch hẹn".into(),
                        language: "vi".into(),
                    };
                    channel.send(&m).await.unwrap();
                }
            });
        }
        while calls.join_next().await.is_some() {}
        let took = started.elapsed();
        let cpu = cpu_seconds() - cpu_before;
        println!(
            "provider calls alone (sms_webhook → local gateway, {} at once): {n} in {:.2} s = {:.0}/s, {:.0} µs of CPU per call (client and gateway)",
            services.config.concurrency,
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            cpu * 1e6 / n as f64
        );
        received.store(0, Ordering::Relaxed);
    }

    let rule = &services.rules.rules[0];
    let now = jiff::Timestamp::now();
    let rows: Vec<_> = (0..n)
        .map(|i| {
            let context = serde_json::json!({"event": "appointment.booked", "record": {"start": "2031-03-04T09:00:00+07:00"}});
            let person = &persons[i % persons.len()];
            services.rules.row(rule, person, None, format!("bench-{i}"), context, "bench".into(), now, now)
        })
        .collect();
    for chunk in rows.chunks(1000) {
        store.insert_notifications(chunk).await.unwrap();
    }

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let cpu_before = cpu_seconds();
    let broker_before = proc_cpu::broker_cpu_seconds();
    let started = Instant::now();
    let worker = tokio::spawn(worker::run(
        services.clone(),
        services.channels["sms"].clone(),
        stop_rx,
    ));
    // The relay as `carehub run` runs it (passes back to back while the outbox is full).
    let relay_task = tokio::spawn(relay::run(services.clone(), stop.subscribe()));
    let mut published_at = None;
    let mut looked = Instant::now();
    while received.load(Ordering::Relaxed) < n {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Counting by status reads the whole outbox: every 100 ms, not to weigh on the run.
        if published_at.is_none() && looked.elapsed() >= std::time::Duration::from_millis(100) {
            looked = Instant::now();
            let counts = store.notification_counts().await.unwrap();
            if !counts.iter().any(|(s, c)| s == "pending" && *c > 0) {
                published_at = Some(started.elapsed());
            }
        }
    }
    // Every outcome recorded.
    loop {
        let counts = store.notification_counts().await.unwrap();
        if counts.iter().any(|(s, c)| s == "sent" && *c as usize == n) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let broker = proc_cpu::broker_cpu_seconds()
        .zip(broker_before)
        .map(|(after, before)| after - before);
    let _ = stop.send(true);
    let _ = worker.await;
    let _ = relay_task.await;
    let relay = published_at.unwrap_or(total);
    println!(
        "{label}: relay published {n} in {:.2} s ({:.0}/s); end to end {n} sends in {:.2} s = {:.0} sends/s",
        relay.as_secs_f64(),
        n as f64 / relay.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "  CPU (the whole process, provider included): {:.2} s = {:.0} µs per send, {:.0} % of {cores} cores",
        cpu,
        cpu * 1e6 / n as f64,
        100.0 * cpu / total.as_secs_f64() / cores as f64
    );
    if let (Some(broker), false) = (broker, label.starts_with("embedded")) {
        println!(
            "  the local RabbitMQ broker's CPU: {:.2} s = {:.0} µs per send (on the same cores)",
            broker,
            broker * 1e6 / n as f64
        );
    }
}

/// This process's user + system CPU time so far (Linux: /proc/self/stat; 0 elsewhere).
fn cpu_seconds() -> f64 {
    proc_cpu::stat_cpu_seconds(std::path::Path::new("/proc/self/stat")).unwrap_or(0.0)
}

async fn patients(store: &Store, n: usize) -> Vec<String> {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| {
            let patch = ProfilePatch {
                identifiers: vec![Identifier {
                    system: "CLINIC".into(),
                    value: format!("BENCH-{i}"),
                    kind: None,
                }],
                telecom: vec![ContactPoint {
                    system: ContactSystem::Phone,
                    value: format!("+8490{i:07}"),
                    contact_use: Some("mobile".into()),
                    rank: None,
                }],
                language: Some(["vi", "ru", "zh", "en"][i % 4].into()),
                ..Default::default()
            };
            NewRecord {
                connector: "bench".into(),
                origin: None,
                received_at: jiff::Timestamp::now().to_string(),
                sender: None,
                control_id: None,
                message_type: None,
                charset: None,
                content_hash: format!("bench-{i}"),
                raw: Vec::new(),
                disposition: Disposition::Apply {
                    mapping: "bench".into(),
                    source_system: "BENCH".into(),
                    patch: Some(patch),
                    records: Vec::new(),
                    merge: None,
                    warnings: Vec::new(),
                },
                cursor: None,
                match_input: None,
                reprocess: None,
            }
        })
        .collect();
    let mut ids = Vec::new();
    for chunk in records.chunks(250) {
        for applied in store.apply_batch(chunk).await.unwrap() {
            ids.push(applied.person_id.unwrap());
        }
    }
    ids
}
