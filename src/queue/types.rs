//! What travels through the queue, and the consumer contract both backends keep.
//!
//! A message names a notification and the channel that should carry it; everything else
//! (address, rendered text, status) lives in the store, so a redelivered message can always
//! find out whether its send already happened.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One queued send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    /// The notification's id; also the broker's `message_id` and the provider's idempotency key.
    pub notification: String,
    /// The channel this send goes through (a queue per channel).
    pub channel: String,
    /// Deliveries so far that ended in a retry (0 on the first delivery).
    #[serde(default)]
    pub attempt: u32,
}

impl QueueMessage {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a queue message serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<QueueMessage, QueueError> {
        serde_json::from_slice(bytes)
            .map_err(|e| QueueError::Poison(format!("unreadable queue message: {e}")))
    }
}

/// A message taken from a queue. Exactly one of `ack`, `retry` or `dead_letter` settles it; a
/// consumer that dies before settling gets it redelivered (`redelivered` is then true).
#[derive(Debug, Clone)]
pub struct Received {
    pub message: QueueMessage,
    /// The broker (or the embedded queue) delivered it before without a settlement.
    pub redelivered: bool,
}

/// How a consumer settles a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// Done: remove it.
    Ack,
    /// Deliver it again after `delay`, with `attempt + 1`.
    Retry { delay: Duration, reason: String },
    /// Give up: move it to the channel's dead-letter queue with the reason.
    DeadLetter { reason: String },
}

/// A dead-lettered message as ops see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message: QueueMessage,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue broker: {0}")]
    Broker(String),
    #[error("queue store: {0}")]
    Store(String),
    #[error("the broker did not confirm a publish: {0}")]
    NotConfirmed(String),
    #[error("{0}")]
    Poison(String),
    #[error("the queue is closed")]
    Closed,
}

/// `queue:` in `config/carehub.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// `embedded` (a table in the store; the default) or `rabbitmq`.
    #[serde(default)]
    pub kind: QueueKind,
    /// RabbitMQ only: `amqp://user:password@host:5672/vhost`, usually `${RABBITMQ_URL}`.
    #[serde(default)]
    pub url: Option<crate::config::Secret>,
    /// Prefix of every exchange and queue name (`carehub` → exchange `carehub.notifications`,
    /// queues `carehub.send.<channel>`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Unsettled deliveries a consumer holds at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Deliveries of one send before it is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt (with jitter), capped at `retry_max_secs`.
    #[serde(default = "default_retry_base_secs")]
    pub retry_base_secs: u64,
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// Embedded only: how long a delivery stays invisible to other consumers before it is
    /// delivered again when nobody settles it (a consumer that crashed).
    #[serde(default = "default_visibility_secs")]
    pub visibility_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    #[default]
    Embedded,
    Rabbitmq,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            kind: QueueKind::Embedded,
            url: None,
            prefix: default_prefix(),
            prefetch: default_prefetch(),
            max_attempts: default_max_attempts(),
            retry_base_secs: default_retry_base_secs(),
            retry_max_secs: default_retry_max_secs(),
            visibility_secs: default_visibility_secs(),
        }
    }
}

impl QueueConfig {
    /// The delay before delivery number `attempt + 1`: exponential with jitter, at least the
    /// provider's `Retry-After` when it gave one.
    pub fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let base = self.retry_base_secs.max(1) as f64 * 2f64.powi(attempt.min(20) as i32);
        let capped = base.min(self.retry_max_secs.max(1) as f64);
        // Full jitter over the upper half: spread retries without ever retrying at once.
        let jitter = 0.5 + 0.5 * (uuid::Uuid::now_v7().as_u128() % 1000) as f64 / 1000.0;
        let delay = Duration::from_secs_f64(capped * jitter);
        match retry_after {
            Some(after) if after > delay => after,
            _ => delay,
        }
    }
}

fn default_prefix() -> String {
    "carehub".into()
}
fn default_prefetch() -> u16 {
    64
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_base_secs() -> u64 {
    5
}
fn default_retry_max_secs() -> u64 {
    3600
}
fn default_visibility_secs() -> u64 {
    120
}
