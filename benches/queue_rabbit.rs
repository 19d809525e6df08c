//! RabbitMQ queue benchmark: publishes 100,000 messages in confirmed batches of 1,000 through
//! `RabbitQueue::publish`, then consumes and settles them one by one through `RabbitConsumer`
//! (which gathers the acks).
//! Prints messages/s for each side. Needs RabbitMQ at 127.0.0.1:5672 (guest/guest), or
//! `BENCH_RABBIT_URL`; skips with a message without it.
//!
//!     cargo bench --bench queue_rabbit
//!     BENCH_MESSAGES=20000 BENCH_BATCH=200 BENCH_PREFETCH=256 cargo bench --bench queue_rabbit

#[path = "support/proc_cpu.rs"]
mod proc_cpu;

use std::time::{Duration, Instant};

use carehub::config::Secret;
use carehub::queue::{QueueConfig, QueueKind, QueueMessage, RabbitQueue, Settle};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let url =
        std::env::var("BENCH_RABBIT_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let total = env_usize("BENCH_MESSAGES", 100_000);
    let batch = env_usize("BENCH_BATCH", 1_000).max(1);
    let prefetch = env_usize("BENCH_PREFETCH", 256).clamp(1, u16::MAX as usize) as u16;

    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect("127.0.0.1:5672"),
    )
    .await;
    if std::env::var("BENCH_RABBIT_URL").is_err() && !matches!(reachable, Ok(Ok(_))) {
        eprintln!("SKIP: RabbitMQ not reachable at 127.0.0.1:5672; nothing to measure");
        return;
    }
    let config = QueueConfig {
        kind: QueueKind::Rabbitmq,
        url: Some(Secret::new(url)),
        prefix: format!("bench{}", uuid::Uuid::now_v7().simple()),
        prefetch,
        ..QueueConfig::default()
    };
    let queue = RabbitQueue::connect(&config).await.expect("connect");
    let channels = vec!["sms".to_string()];
    queue.declare(&channels).await.expect("declare");

    let broker_start = proc_cpu::broker_cpu_seconds();
    let started = Instant::now();
    for first in (0..total).step_by(batch) {
        let messages: Vec<QueueMessage> = (first..(first + batch).min(total))
            .map(|i| QueueMessage {
                notification: format!("0190f5c2-0000-7000-8000-{i:012}"),
                channel: "sms".into(),
                attempt: 0,
            })
            .collect();
        queue.publish(&messages).await.expect("confirmed");
    }
    let publish = started.elapsed();
    let broker_published = proc_cpu::broker_cpu_seconds();

    let mut consumer = queue.consume("sms").await.expect("consume");
    let started = Instant::now();
    for _ in 0..total {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("a delivery within 30 s")
            .expect("readable");
        delivery.settle(Settle::Ack).await.expect("ack");
    }
    let consume = started.elapsed();
    let broker_consumed = proc_cpu::broker_cpu_seconds();
    consumer.close().await;
    let left = queue.depth("sms").await.expect("depth");
    queue.delete_topology(&channels).await.expect("cleanup");

    println!("queue_rabbit: {total} messages, batches of {batch}, prefetch {prefetch}");
    println!(
        "  publish (persistent, confirmed): {:>8.0} msgs/s  ({:.2} s)",
        total as f64 / publish.as_secs_f64(),
        publish.as_secs_f64()
    );
    println!(
        "  consume + settle one by one:     {:>8.0} msgs/s  ({:.2} s)",
        total as f64 / consume.as_secs_f64(),
        consume.as_secs_f64()
    );
    println!("  left in the queue: {left}");
    if let (Some(a), Some(b), Some(c)) = (broker_start, broker_published, broker_consumed) {
        println!(
            "  the local broker's CPU per message: publish {:.0} µs, consume + ack {:.0} µs",
            (b - a) * 1e6 / total as f64,
            (c - b) * 1e6 / total as f64
        );
    }
}
