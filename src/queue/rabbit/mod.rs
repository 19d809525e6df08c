//! The RabbitMQ backend of the notification queue (lapin, AMQP 0-9-1).
//!
//! Topology, per prefix `P` (see `docs/queue.md`):
//! - `P.notifications`: a durable direct exchange; the routing key is the channel name.
//! - `P.send.<channel>`: a durable quorum queue bound with routing key `<channel>`. Deliveries
//!   returned to it more than [`SEND_DELIVERY_LIMIT`] times (consumers that crash on them) are
//!   dead-lettered by the broker into `P.dead.<channel>`.
//! - `P.dead.<channel>`: a durable quorum queue of dead letters, each with the header
//!   `x-carehub-reason`.
//! - `P.delay.<ms>`: one fanout exchange and one quorum queue per delay tier. The queue has
//!   `x-message-ttl = ms` and dead-letters expired messages back to `P.notifications` with their
//!   routing key (the channel): a retry is a publish into the smallest tier at least as long as
//!   the delay. Tiers rather than per-message TTL, because a queue only expires its head.
//!
//! Every publish is persistent and confirmed by the broker before it counts; a nack or an
//! unroutable message is an error. Connections are re-opened with capped, jittered exponential
//! backoff. Nothing here logs a message body or a reason text: ids and queue names only.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::types::{DeadLetter, QueueConfig, QueueError, QueueMessage};

mod acks;
mod consumer;
mod topology;

pub use consumer::{RabbitConsumer, RabbitDelivery};

/// Delay tiers in milliseconds. A retry waits in the smallest tier at least as long as its
/// delay (the last tier for longer delays).
pub const DELAY_TIERS_MS: [u64; 7] = [1_000, 5_000, 15_000, 60_000, 300_000, 900_000, 3_600_000];

/// The header that carries why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-carehub-reason";

/// Returns of one delivery to its send queue (a consumer died holding it) before the broker
/// moves it to the dead-letter queue: a message that crashes consumers is not retried forever.
pub const SEND_DELIVERY_LIMIT: i64 = 20;

/// Dead letters are read by fetching and returning them, which counts as a return on a quorum
/// queue; RabbitMQ 4 limits returns to 20 by default and would then drop them. Effectively no limit.
const DEAD_DELIVERY_LIMIT: i64 = 1_000_000_000;

/// How long `connect` and `publish` keep trying to reach the broker before they give up.
const BROKER_PATIENCE: Duration = Duration::from_secs(30);

/// Connection to RabbitMQ for publishing and administration; consumers open their own.
#[derive(Clone)]
pub struct RabbitQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL holds a password: never printed.
        f.debug_struct("RabbitQueue").finish_non_exhaustive()
    }
}

/// What the queue, its consumers and their deliveries share.
struct Shared {
    url: String,
    prefix: String,
    prefetch: u16,
    max_attempts: u32,
    /// The publishing connection and its confirm-mode channel; `None` after it failed.
    publisher: Mutex<Option<Link>>,
}

/// A connection with one channel.
struct Link {
    connection: Connection,
    channel: Channel,
}

/// One message to publish.
struct Outgoing {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
}

/// Why a publish round failed.
enum RoundError {
    /// The connection or channel failed: reconnect and publish what is unconfirmed again.
    Link(lapin::Error),
    /// The broker refused (nack) or could not route a message: publishing again won't help.
    Refused(String),
    /// The confirms did not come before the deadline: the link is suspect, the time is up.
    TimedOut,
}

impl RabbitQueue {
    /// Connects (with backoff while the broker is not up yet, up to 30 s) and opens a
    /// publishing channel with publisher confirms.
    pub async fn connect(config: &QueueConfig) -> Result<RabbitQueue, QueueError> {
        let url = config
            .url
            .as_ref()
            .ok_or_else(|| {
                QueueError::Broker("queue.url is not set (amqp://user:password@host:5672/vhost)".into())
            })?
            .expose()
            .to_string();
        let shared = Arc::new(Shared {
            url,
            prefix: config.prefix.clone(),
            prefetch: config.prefetch.max(1),
            max_attempts: config.max_attempts.max(1),
            publisher: Mutex::new(None),
        });
        let link = shared
            .open_with_backoff("publisher", true, Some(BROKER_PATIENCE))
            .await?;
        *shared.publisher.lock().await = Some(link);
        Ok(RabbitQueue { shared })
    }

    /// Declares the topology for these channel names; idempotent, called at start.
    pub async fn declare(&self, channels: &[String]) -> Result<(), QueueError> {
        let admin = self.shared.admin().await?;
        let result = self.shared.declare_on(&admin.channel, channels).await;
        admin.close().await;
        result.map_err(broker)
    }

    /// Publishes persistent messages (routing key = channel) and returns Ok only once the
    /// broker confirmed every one. Pipelined: all are sent, then all confirms awaited. A dropped
    /// connection is re-opened and the unconfirmed messages published again, for up to 30 s;
    /// after an error, messages of the batch that were confirmed before it will be duplicated
    /// by the caller's retry (at least once; consumers de-duplicate by notification id).
    pub async fn publish(&self, messages: &[QueueMessage]) -> Result<(), QueueError> {
        let exchange = self.shared.exchange();
        let outgoing: Vec<Outgoing> = messages
            .iter()
            .map(|m| Outgoing {
                exchange: exchange.clone(),
                routing_key: m.channel.clone(),
                body: m.to_bytes(),
                properties: properties(&m.notification, None),
            })
            .collect();
        self.shared.publish(&outgoing).await
    }

    /// A consumer of one channel's queue holding up to `prefetch` unsettled deliveries.
    pub async fn consume(&self, channel: &str) -> Result<RabbitConsumer, QueueError> {
        RabbitConsumer::start(self.shared.clone(), channel).await
    }

    /// Messages ready in a channel's send queue (not counting unacknowledged deliveries).
    pub async fn depth(&self, channel: &str) -> Result<u64, QueueError> {
        let queue = self.shared.send_queue(channel);
        self.shared.count(&queue).await
    }

    /// Messages ready in a channel's dead-letter queue.
    pub async fn dead_depth(&self, channel: &str) -> Result<u64, QueueError> {
        let queue = self.shared.dead_queue(channel);
        self.shared.count(&queue).await
    }

    /// The dead letters of a channel with their reasons, oldest first, left in the queue: they
    /// are fetched with `basic.get` on a channel of their own and held unacknowledged, then the
    /// channel is closed, which returns them all to the queue in their order.
    pub async fn dead_letters(&self, channel: &str) -> Result<Vec<DeadLetter>, QueueError> {
        let queue = self.shared.dead_queue(channel);
        let admin = self.shared.admin().await?;
        let mut letters = Vec::new();
        let result = loop {
            match admin
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
            {
                Ok(Some(got)) => letters.push(topology::read_dead_letter(channel, &got.delivery)),
                Ok(None) => break Ok(letters),
                Err(e) => break Err(broker(e)),
            }
        };
        admin.close().await;
        result
    }

    /// Deletes the queues and exchanges of these channels and of the delay tiers (tests clean
    /// up with it; the tiers are shared by every channel of the prefix).
    pub async fn delete_topology(&self, channels: &[String]) -> Result<(), QueueError> {
        let admin = self.shared.admin().await?;
        let result = self.shared.delete_on(&admin.channel, channels).await;
        admin.close().await;
        result.map_err(broker)
    }

    /// Test hook: the name of every connection this queue and its consumers open contains
    /// this, so a test can have the broker close them (`rabbitmqctl close_connection`).
    pub fn connection_tag(&self) -> String {
        format!("carehub {}", self.shared.prefix)
    }
}

impl Shared {
    fn exchange(&self) -> String {
        format!("{}.notifications", self.prefix)
    }
    fn send_queue(&self, channel: &str) -> String {
        format!("{}.send.{channel}", self.prefix)
    }
    fn dead_queue(&self, channel: &str) -> String {
        format!("{}.dead.{channel}", self.prefix)
    }
    fn delay_tier(&self, ms: u64) -> String {
        format!("{}.delay.{ms}", self.prefix)
    }

    /// Opens a connection and a channel (in confirm mode if asked), retrying with capped,
    /// jittered exponential backoff for up to `patience` (forever when `None`).
    async fn open_with_backoff(
        &self,
        role: &str,
        confirms: bool,
        patience: Option<Duration>,
    ) -> Result<Link, QueueError> {
        let name = format!("carehub {} {role}", self.prefix);
        let open = || open_link(&self.url, &name, confirms);
        let attempt = open
            .retry(backoff(patience))
            .sleep(tokio::time::sleep)
            .notify(|e, wait| tracing::warn!(role, error = %e, ?wait, "cannot reach RabbitMQ yet; retrying"));
        match patience {
            // A connect to a silent host can hang: bound the whole wait, not just the sleeps.
            Some(p) => tokio::time::timeout(p + Duration::from_secs(5), attempt)
                .await
                .map_err(|_| QueueError::Broker(format!("RabbitMQ unreachable for {}s", p.as_secs())))?
                .map_err(broker),
            None => attempt.await.map_err(broker),
        }
    }

    /// A short-lived connection for declarations and inspection, so that a failed passive
    /// declare (which closes its channel) never disturbs publishing.
    async fn admin(&self) -> Result<Link, QueueError> {
        self.open_with_backoff("admin", false, Some(BROKER_PATIENCE))
            .await
    }

    async fn count(&self, queue: &str) -> Result<u64, QueueError> {
        let admin = self.admin().await?;
        let declared = admin
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        admin.close().await;
        Ok(u64::from(declared.map_err(broker)?.message_count()))
    }

    /// Publishes `items` through the confirm channel and returns once every one is confirmed;
    /// on a link failure re-opens it and publishes the unconfirmed ones again, for up to 30 s.
    async fn publish(&self, items: &[Outgoing]) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + BROKER_PATIENCE;
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut waits = backoff(None).build();
        let mut publisher = self.publisher.lock().await;
        loop {
            let failure = match publisher.as_ref() {
                None => match tokio::time::timeout_at(
                    deadline,
                    open_link(&self.url, &format!("carehub {} publisher", self.prefix), true),
                )
                .await
                {
                    Ok(Ok(link)) => {
                        *publisher = Some(link);
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out connecting".into(),
                },
                Some(link) => match publish_round(&link.channel, items, &mut pending, deadline).await {
                    Ok(()) => return Ok(()),
                    Err(RoundError::Refused(why)) => return Err(QueueError::NotConfirmed(why)),
                    Err(RoundError::TimedOut) => {
                        *publisher = None;
                        return Err(QueueError::Broker(format!(
                            "{} of {} messages unconfirmed after {}s",
                            pending.len(),
                            items.len(),
                            BROKER_PATIENCE.as_secs()
                        )));
                    }
                    Err(RoundError::Link(e)) => {
                        *publisher = None;
                        e.to_string()
                    }
                },
            };
            let wait = waits.next().unwrap_or(Duration::from_secs(5));
            if Instant::now() + wait >= deadline {
                return Err(QueueError::Broker(format!(
                    "{} of {} messages unconfirmed after {}s: {failure}",
                    pending.len(),
                    items.len(),
                    BROKER_PATIENCE.as_secs()
                )));
            }
            tracing::warn!(unconfirmed = pending.len(), error = %failure, ?wait, "publishing to RabbitMQ failed; reconnecting");
            tokio::time::sleep(wait).await;
        }
    }
}

impl Link {
    async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Sends every pending item, then awaits their confirms; confirmed ones leave `pending`.
async fn publish_round(
    channel: &Channel,
    items: &[Outgoing],
    pending: &mut Vec<usize>,
    deadline: Instant,
) -> Result<(), RoundError> {
    let mut confirms = Vec::with_capacity(pending.len());
    for &i in pending.iter() {
        let item = &items[i];
        let sent = channel
            .basic_publish(
                item.exchange.as_str().into(),
                item.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &item.body,
                item.properties.clone(),
            )
            .await
            .map_err(RoundError::Link)?;
        confirms.push((i, sent));
    }
    let mut confirmed = vec![false; items.len()];
    let mut failure = None;
    for (i, confirm) in confirms {
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => confirmed[i] = true,
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                failure.get_or_insert(RoundError::Refused(format!(
                    "no queue for routing key {} on exchange {} ({}); declare the channel first",
                    returned.delivery.routing_key, items[i].exchange, returned.reply_text
                )));
            }
            Ok(Ok(Confirmation::Nack(_))) => {
                failure.get_or_insert(RoundError::Refused("the broker nacked a message".into()));
            }
            Ok(Ok(Confirmation::NotRequested)) => {
                failure.get_or_insert(RoundError::Refused("the channel is not in confirm mode".into()));
            }
            Ok(Err(e)) => {
                failure.get_or_insert(RoundError::Link(e));
            }
            Err(_) => {
                failure.get_or_insert(RoundError::TimedOut);
            }
        }
    }
    pending.retain(|&i| !confirmed[i]);
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

async fn open_link(url: &str, name: &str, confirms: bool) -> Result<Link, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connection = Connection::connect(url, properties).await?;
    let channel = connection.create_channel().await?;
    if confirms {
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    Ok(Link { connection, channel })
}

/// Exponential from 200 ms, doubled, jittered, capped at 10 s per wait.
fn backoff(total: Option<Duration>) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .without_max_times()
        .with_total_delay(total)
}

fn broker(e: impl std::fmt::Display) -> QueueError {
    QueueError::Broker(e.to_string())
}

/// Persistent JSON with the notification id as `message_id` (ids longer than AMQP allows are
/// left out rather than cut), and the reason header on dead letters.
fn properties(notification: &str, reason: Option<&str>) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    if let Ok(id) = ShortString::try_new(notification) {
        properties = properties.with_message_id(id);
    }
    if let Some(reason) = reason {
        let mut headers = FieldTable::default();
        headers.insert(REASON_HEADER.into(), topology::long(reason));
        properties = properties.with_headers(headers);
    }
    properties
}

/// The smallest delay tier at least as long as `delay`, or the longest tier.
pub fn delay_tier_ms(delay: Duration) -> u64 {
    let ms = delay.as_millis();
    DELAY_TIERS_MS
        .into_iter()
        .find(|&tier| u128::from(tier) >= ms)
        .unwrap_or(DELAY_TIERS_MS[DELAY_TIERS_MS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_waits_in_the_smallest_tier_at_least_as_long() {
        assert_eq!(delay_tier_ms(Duration::ZERO), 1_000);
        assert_eq!(delay_tier_ms(Duration::from_millis(1_000)), 1_000);
        assert_eq!(delay_tier_ms(Duration::from_millis(1_001)), 5_000);
        assert_eq!(delay_tier_ms(Duration::from_secs(61)), 300_000);
        assert_eq!(delay_tier_ms(Duration::from_secs(86_400)), 3_600_000);
    }
}
