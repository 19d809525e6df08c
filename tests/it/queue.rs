//! The consumer contract, the same scenarios on every queue backend: the embedded queue here,
//! RabbitMQ in `queue_rabbit.rs` through [`Bench::with_queue`]. A relay pass publishes from
//! the outbox; channel workers send to a local SMS gateway.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carehub::channels::{Channel, ChannelConfig};
use carehub::config::Document;
use carehub::config::StoreConfig;
use carehub::delivery::{NotifyConfig, Services, Templates, relay, worker};
use carehub::model::{ContactPoint, ContactSystem, Identifier, ProfilePatch};
use carehub::queue::{Queue, QueueConfig, Settle};
use carehub::rules::{RuleConfig, RuleSet};
use carehub::store::{Disposition, NewRecord, Store};

use crate::helpers::{self, Backend};
use crate::notify::Gateway;

/// A store with one patient, an `sms` channel to a local gateway, and one rule.
pub struct Bench {
    pub services: Arc<Services>,
    pub gateway: Gateway,
    pub person: String,
    _dir: tempfile::TempDir,
}

const RULE: &str = "name: notice\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [sms]\ntemplate: appointment-confirmation\nquiet_hours: false\n";
/// A second rule, at most one send per person a week.
const CAPPED: &str = "name: capped\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [sms]\ntemplate: appointment-confirmation\nquiet_hours: false\ncap: {max: 1, per: 7d}\n";

impl Bench {
    /// With the embedded queue of the bench's own store.
    pub async fn embedded(queue_config: QueueConfig) -> Option<Bench> {
        Self::build(queue_config, |store, config| {
            Box::pin(async move { Queue::open(&config, &store, &["sms".into()]).await.unwrap() })
        })
        .await
    }

    /// With a queue the caller opens (RabbitMQ).
    pub async fn with_queue<F>(queue_config: QueueConfig, open: F) -> Option<Bench>
    where
        F: FnOnce(Store, QueueConfig) -> std::pin::Pin<Box<dyn std::future::Future<Output = Queue> + Send>>,
    {
        Self::build(queue_config, open).await
    }

    async fn build<F>(queue_config: QueueConfig, open: F) -> Option<Bench>
    where
        F: FnOnce(Store, QueueConfig) -> std::pin::Pin<Box<dyn std::future::Future<Output = Queue> + Send>>,
    {
        let dir = tempfile::tempdir().unwrap();
        let url = helpers::fresh_store_url(Backend::default(), dir.path()).await?;
        let rule = |name: &str, yaml: &str| -> RuleConfig {
            Document::parse(name, yaml).unwrap().deserialize().0.unwrap()
        };
        let rules = RuleSet::new(
            &[rule("notice.yaml", RULE), rule("capped.yaml", CAPPED)],
            jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap(),
        );
        let store = Store::open(&StoreConfig {
            url,
            ..Default::default()
        })
        .await
        .unwrap()
        .with_rules(rules.clone());
        let person = patient(&store).await;
        let (gateway, gateway_url) = Gateway::start().await;
        let doc = Document::parse("carehub.yaml", "x: 1").unwrap();
        let value = serde_json::json!({"type": "sms_webhook", "url": gateway_url, "rate_per_sec": 100000.0});
        let (config, problems) = ChannelConfig::from_value(&doc, &value, "channels.sms");
        assert!(problems.is_empty(), "{problems:?}");
        let channel = Channel::build("sms", &config.unwrap(), helpers::http()).unwrap();
        let mut problems = Vec::new();
        let templates = Templates::load_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates"),
            &mut problems,
        );
        let queue = open(store.clone(), queue_config.clone()).await;
        let services = Services {
            store,
            queue,
            rules: Arc::new(rules),
            templates: Arc::new(templates),
            channels: BTreeMap::from([("sms".to_string(), Arc::new(channel))]),
            config: NotifyConfig {
                quiet_hours: None,
                lease_secs: 1,
                ..Default::default()
            },
            queue_config,
        };
        Some(Bench {
            services: Arc::new(services),
            gateway,
            person,
            _dir: dir,
        })
    }

    pub fn channel(&self) -> Arc<Channel> {
        self.services.channels["sms"].clone()
    }

    /// `n` notifications for the patient, published by relay passes; returns their ids.
    pub async fn publish(&self, n: usize) -> Vec<String> {
        let ids = self.outbox("notice", n).await;
        while relay::pass(&self.services).await.unwrap() > 0 {}
        ids
    }

    /// `n` notifications of `rule` for the patient in the outbox; returns their ids.
    pub async fn outbox(&self, rule: &str, n: usize) -> Vec<String> {
        let s = &self.services;
        let rule = s.rules.rule(rule).expect("a rule of the bench");
        let now = jiff::Timestamp::now();
        let rows: Vec<_> = (0..n)
            .map(|i| {
                let context = serde_json::json!({"event": "appointment.booked", "record": {"start": "2031-03-04T09:00:00+07:00"}});
                s.rules.row(rule, &self.person, None, format!("k{i}-{}", uuid::Uuid::now_v7()), context, "test".into(), now, now)
            })
            .collect();
        let ids = rows.iter().map(|r| r.id.clone()).collect();
        for chunk in rows.chunks(500) {
            s.store.insert_notifications(chunk).await.unwrap();
        }
        ids
    }

    pub async fn status(&self, id: &str) -> String {
        let sends = self
            .services
            .store
            .interactions(&self.person, 100_000)
            .await
            .unwrap();
        sends
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.status)
            .unwrap_or_default()
    }
}

async fn patient(store: &Store) -> String {
    let patch = ProfilePatch {
        identifiers: vec![Identifier {
            system: "CLINIC".into(),
            value: format!("Q-{}", uuid::Uuid::now_v7().simple()),
            kind: None,
        }],
        telecom: vec![ContactPoint {
            system: ContactSystem::Phone,
            value: "+84903000444".into(),
            contact_use: Some("mobile".into()),
            rank: None,
        }],
        language: Some("vi".into()),
        ..Default::default()
    };
    let record = NewRecord {
        connector: "test".into(),
        origin: None,
        received_at: jiff::Timestamp::now().to_string(),
        sender: None,
        control_id: None,
        message_type: None,
        charset: None,
        content_hash: uuid::Uuid::now_v7().to_string(),
        raw: Vec::new(),
        disposition: Disposition::Apply {
            mapping: "test".into(),
            source_system: "TEST".into(),
            patch: Some(patch),
            records: Vec::new(),
            merge: None,
            warnings: Vec::new(),
        },
        cursor: None,
        match_input: None,
        reprocess: None,
    };
    store.apply_batch(&[record]).await.unwrap()[0]
        .person_id
        .clone()
        .unwrap()
}

/// publish → consume → deliver: every send reaches the provider once and is recorded.
pub async fn delivers_each_send_once(b: &Bench) {
    let ids = b.publish(5).await;
    let mut consumer = b.services.queue.consume("sms").await.unwrap();
    for _ in 0..5 {
        let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .unwrap()
            .unwrap();
        let settle = worker::handle(&b.services, &b.channel(), d.received()).await;
        assert_eq!(settle, Settle::Ack);
        d.settle(settle).await.unwrap();
    }
    assert_eq!(b.gateway.bodies().len(), 5);
    for id in &ids {
        assert_eq!(b.status(id).await, "sent");
    }
    let sent: Vec<String> = b
        .gateway
        .bodies()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert!(sent.contains(id), "the idempotency key is the notification id");
    }
}

/// A worker that dies after the provider took the send but before it acknowledged the queue
/// message: the message comes back, and the provider does not get the send again.
pub async fn a_crash_before_ack_does_not_send_twice(b: &Bench) {
    b.publish(1).await;
    let mut consumer = b.services.queue.consume("sms").await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert!(!d.received().redelivered);
    worker::handle(&b.services, &b.channel(), d.received()).await;
    assert_eq!(b.gateway.bodies().len(), 1);
    // The crash: neither the delivery nor the consumer settles anything.
    drop(d);
    drop(consumer);
    let mut consumer = b.services.queue.consume("sms").await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        again.received().redelivered,
        "the queue marks it delivered before"
    );
    let settle = worker::handle(&b.services, &b.channel(), again.received()).await;
    assert_eq!(settle, Settle::Ack, "already sent: only acknowledged");
    again.settle(settle).await.unwrap();
    assert_eq!(b.gateway.bodies().len(), 1, "the provider got it once");
}

/// A provider that keeps failing: retried with backoff, then dead-lettered with the reason,
/// and the send is marked failed.
pub async fn a_send_that_keeps_failing_ends_in_the_dead_letters(b: &Bench) {
    *b.gateway.fail.lock().unwrap() = 1000;
    let ids = b.publish(1).await;
    let mut consumer = b.services.queue.consume("sms").await.unwrap();
    for _ in 0..b.services.queue_config.max_attempts {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .unwrap()
            .unwrap();
        let settle = worker::handle(&b.services, &b.channel(), d.received()).await;
        assert!(
            matches!(settle, Settle::Retry { .. } | Settle::DeadLetter { .. }),
            "{settle:?}"
        );
        d.settle(settle).await.unwrap();
    }
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = b.services.queue.dead_letters("sms").await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("gave up after"), "{}", dead[0].reason);
    assert!(
        dead[0].reason.contains("503"),
        "the provider's answer is kept: {}",
        dead[0].reason
    );
    assert_eq!(b.status(&ids[0]).await, "failed");
}

fn test_queue_config() -> QueueConfig {
    QueueConfig {
        visibility_secs: 1,
        retry_base_secs: 1,
        retry_max_secs: 1,
        max_attempts: 2,
        ..Default::default()
    }
}

#[tokio::test]
async fn embedded_queue_delivers_each_send_once() {
    let Some(b) = Bench::embedded(test_queue_config()).await else {
        return;
    };
    delivers_each_send_once(&b).await;
}

#[tokio::test]
async fn embedded_queue_a_crash_before_ack_does_not_send_twice() {
    let Some(b) = Bench::embedded(test_queue_config()).await else {
        return;
    };
    a_crash_before_ack_does_not_send_twice(&b).await;
}

#[tokio::test]
async fn embedded_queue_a_send_that_keeps_failing_ends_in_the_dead_letters() {
    let Some(b) = Bench::embedded(test_queue_config()).await else {
        return;
    };
    a_send_that_keeps_failing_ends_in_the_dead_letters(&b).await;
}

#[tokio::test]
async fn embedded_queue_a_poison_message_is_dead_lettered_and_blocks_nothing() {
    let Some(b) = Bench::embedded(test_queue_config()).await else {
        return;
    };
    let Queue::Embedded(q) = &b.services.queue else {
        unreachable!()
    };
    q.publish_raw("sms", "{not json").await.unwrap();
    b.publish(1).await;
    let mut consumer = b.services.queue.consume("sms").await.unwrap();
    let first = consumer.next().await;
    assert!(
        matches!(first, Err(carehub::queue::QueueError::Poison(_))),
        "the poison comes out as such"
    );
    let good = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap();
    let settle = worker::handle(&b.services, &b.channel(), good.received()).await;
    good.settle(settle).await.unwrap();
    assert_eq!(b.gateway.bodies().len(), 1, "the message behind it is delivered");
    let dead = b.services.queue.dead_letters("sms").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("unreadable"), "{}", dead[0].reason);
}

/// The relay as `carehub run` runs it, one notification per pass: while a pass waits for the
/// broker's confirms the next one reads and checks, yet every send goes out once, and a
/// weekly cap holds across passes (the second and third sends of the capped rule are held
/// back, whichever pass they fall in).
pub async fn the_running_relay_sends_each_once_and_caps_hold_across_passes(b: &Bench) {
    let services = Arc::new(Services {
        store: b.services.store.clone(),
        queue: b.services.queue.clone(),
        rules: b.services.rules.clone(),
        templates: b.services.templates.clone(),
        channels: b.services.channels.clone(),
        config: NotifyConfig {
            relay_batch: 1,
            ..b.services.config.clone()
        },
        queue_config: b.services.queue_config.clone(),
    });
    let mut ids = b.outbox("notice", 8).await;
    let capped = b.outbox("capped", 3).await;
    ids.extend(capped.iter().cloned());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(relay::run(services.clone(), stop_rx.clone()));
    let worker = tokio::spawn(worker::run(services.clone(), b.channel(), stop_rx));
    let settled = |status: &str| matches!(status, "sent" | "suppressed");
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.clear();
        for id in &ids {
            statuses.push(b.status(id).await);
        }
        if statuses.iter().all(|s| settled(s)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    relay.await.unwrap();
    worker.await.unwrap();
    assert!(statuses.iter().all(|s| settled(s)), "{statuses:?}");
    assert!(statuses[..8].iter().all(|s| s == "sent"), "{statuses:?}");
    let capped_sent = statuses[8..].iter().filter(|s| *s == "sent").count();
    assert_eq!(capped_sent, 1, "the cap of one a week: {statuses:?}");
    let bodies = b.gateway.bodies();
    assert_eq!(bodies.len(), 9, "each send once: {bodies:?}");
}

#[tokio::test]
async fn embedded_queue_the_running_relay_sends_each_once_and_caps_hold_across_passes() {
    let Some(b) = Bench::embedded(test_queue_config()).await else {
        return;
    };
    the_running_relay_sends_each_once_and_caps_hold_across_passes(&b).await;
}

#[tokio::test]
async fn rabbitmq_the_running_relay_sends_each_once_and_caps_hold_across_passes() {
    let Some(b) = rabbit_bench().await else { return };
    the_running_relay_sends_each_once_and_caps_hold_across_passes(&b).await;
    rabbit_cleanup(&b).await;
}

/// A RabbitMQ configuration with a prefix of its own, or `None` (loudly) without a broker.
pub async fn rabbit_config() -> Option<QueueConfig> {
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect("127.0.0.1:5672"),
    )
    .await;
    if !matches!(reachable, Ok(Ok(_))) {
        if helpers::required() {
            panic!("CAREHUB_REQUIRE_SERVICES=1 but RabbitMQ at 127.0.0.1:5672 is unreachable");
        }
        eprintln!(
            "\n!!! SKIP: RabbitMQ not reachable at 127.0.0.1:5672 (start it: rabbitmq-server -detached) !!!\n"
        );
        return None;
    }
    Some(QueueConfig {
        kind: carehub::queue::QueueKind::Rabbitmq,
        url: Some(carehub::config::Secret::new(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        )),
        prefix: format!("t{}", uuid::Uuid::now_v7().simple()),
        ..test_queue_config()
    })
}

async fn rabbit_bench() -> Option<Bench> {
    let config = rabbit_config().await?;
    Bench::with_queue(config, |store, config| {
        Box::pin(async move {
            Queue::open(&config, &store, &["sms".into()])
                .await
                .expect("RabbitMQ opens")
        })
    })
    .await
}

async fn rabbit_cleanup(b: &Bench) {
    if let Queue::Rabbit(q) = &b.services.queue {
        q.delete_topology(&["sms".into()])
            .await
            .expect("delete the topology");
    }
}

#[tokio::test]
async fn rabbitmq_delivers_each_send_once() {
    let Some(b) = rabbit_bench().await else { return };
    delivers_each_send_once(&b).await;
    rabbit_cleanup(&b).await;
}

#[tokio::test]
async fn rabbitmq_a_crash_before_ack_does_not_send_twice() {
    let Some(b) = rabbit_bench().await else { return };
    a_crash_before_ack_does_not_send_twice(&b).await;
    rabbit_cleanup(&b).await;
}

#[tokio::test]
async fn rabbitmq_a_send_that_keeps_failing_ends_in_the_dead_letters() {
    let Some(b) = rabbit_bench().await else { return };
    a_send_that_keeps_failing_ends_in_the_dead_letters(&b).await;
    rabbit_cleanup(&b).await;
}

#[tokio::test]
async fn a_send_reaching_quiet_hours_in_the_patients_zone_waits_without_a_provider_call() {
    let Some(b) = Bench::embedded(test_queue_config()).await else {
        return;
    };
    // A zone where it is night now (some zone always is).
    let zones = [
        "Pacific/Kiritimati",
        "Asia/Tokyo",
        "Asia/Kolkata",
        "Europe/Moscow",
        "Europe/London",
        "America/Sao_Paulo",
        "America/New_York",
        "America/Denver",
        "Pacific/Honolulu",
    ];
    let night = zones
        .iter()
        .find(|z| {
            let hour = jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::get(z).unwrap())
                .hour();
            !(8..21).contains(&hour)
        })
        .expect("a zone where it is night");
    let s = &b.services;
    let prefs = carehub::store::Preferences {
        timezone: Some(night.to_string()),
        ..Default::default()
    };
    s.store.set_preferences(&b.person, &prefs).await.unwrap();
    // Staged and queued by day somewhere, sent by a worker whose clinic keeps quiet hours.
    let ids = b.publish(1).await;
    // The same rule, keeping quiet hours.
    let doc = Document::parse(
        "notice.yaml",
        &RULE.replace("quiet_hours: false", "quiet_hours: true"),
    )
    .unwrap();
    let quiet_rule: RuleConfig = doc.deserialize().0.unwrap();
    let quiet_worker = Services {
        store: s.store.clone(),
        queue: s.queue.clone(),
        rules: Arc::new(RuleSet::new(&[quiet_rule], s.rules.timezone.clone())),
        templates: s.templates.clone(),
        channels: s.channels.clone(),
        config: NotifyConfig {
            quiet_hours: Some(carehub::delivery::QuietHours {
                start: "21:00".into(),
                end: "08:00".into(),
            }),
            ..Default::default()
        },
        queue_config: s.queue_config.clone(),
    };
    let mut consumer = s.queue.consume("sms").await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap();
    let settle = worker::handle(&quiet_worker, &b.channel(), d.received()).await;
    assert_eq!(settle, Settle::Ack, "handed back to the relay, not retried");
    d.settle(settle).await.unwrap();
    assert!(
        b.gateway.bodies().is_empty(),
        "no call at night in the patient's zone ({night})"
    );
    let sends = s.store.interactions(&b.person, 10).await.unwrap();
    let send = sends.iter().find(|x| x.id == ids[0]).unwrap();
    assert_eq!(
        (send.status.as_str(), send.detail.as_deref()),
        ("pending", Some("quiet hours"))
    );
}
