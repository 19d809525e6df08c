//! Consuming a channel's send queue and settling deliveries. Must not declare topology.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use futures_core::Stream;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;

use super::acks::{Acks, Hold};
use super::{BROKER_PATIENCE, Link, Outgoing, Shared, backoff, broker, delay_tier_ms, properties};
use crate::queue::types::{QueueError, QueueMessage, Received, Settle};

/// A PHI-free description of an unreadable body: what kind of error, and where.
fn unreadable(data: &[u8]) -> String {
    match serde_json::from_slice::<QueueMessage>(data) {
        Ok(_) => "unreadable queue message".into(),
        Err(e) => format!(
            "unreadable queue message ({} error at line {} column {}, {} bytes)",
            match e.classify() {
                serde_json::error::Category::Io => "I/O",
                serde_json::error::Category::Syntax => "JSON syntax",
                serde_json::error::Category::Data => "field",
                serde_json::error::Category::Eof => "truncated JSON",
            },
            e.line(),
            e.column(),
            data.len()
        ),
    }
}

/// Consumes one channel's send queue over a connection of its own.
pub struct RabbitConsumer {
    shared: Arc<Shared>,
    channel: String,
    link: Option<ConsumerLink>,
}

struct ConsumerLink {
    /// Held for its connection: dropping the consumer closes it, and the broker then returns
    /// the unacknowledged deliveries to the queue.
    link: Link,
    deliveries: lapin::Consumer,
    /// The subscription's acknowledgements and the task that sends them.
    acks: Arc<Acks>,
    flusher: tokio::task::JoinHandle<()>,
}

impl Drop for RabbitConsumer {
    fn drop(&mut self) {
        self.drop_link();
    }
}

impl RabbitConsumer {
    /// Subscribes; the first subscription must work within 30 s (the queue exists), later
    /// ones (after a dropped connection) retry without end.
    pub(super) async fn start(shared: Arc<Shared>, channel: &str) -> Result<RabbitConsumer, QueueError> {
        let mut consumer = RabbitConsumer {
            shared,
            channel: channel.to_string(),
            link: None,
        };
        consumer.link = Some(consumer.subscribe(Some(BROKER_PATIENCE)).await?);
        Ok(consumer)
    }

    /// The next delivery. When the connection drops, reconnects with backoff (exponential,
    /// jittered, capped at 10 s, without end) and consumes again; the deliveries it held come
    /// back from the broker marked redelivered. An unreadable body is moved to the dead-letter
    /// queue (confirmed) and then returned as [`QueueError::Poison`]; if that move fails it is
    /// returned to the queue and the error is [`QueueError::Broker`].
    ///
    /// Cancel-safe except while a poison message is being moved: cancelled then, it stays
    /// unacknowledged until this consumer is dropped.
    pub async fn next(&mut self) -> Result<RabbitDelivery, QueueError> {
        loop {
            let link = match self.link.as_mut() {
                Some(link) => link,
                None => {
                    let link = self.subscribe(None).await?;
                    tracing::info!(channel = %self.channel, "consuming from RabbitMQ again");
                    self.link.insert(link)
                }
            };
            let next = std::future::poll_fn(|cx| Pin::new(&mut link.deliveries).poll_next(cx)).await;
            match next {
                Some(Ok(delivery)) => {
                    let hold = link.acks.hold(delivery.delivery_tag);
                    return self.receive(delivery, hold).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(channel = %self.channel, error = %e, "the RabbitMQ consumer failed; reconnecting");
                    self.drop_link();
                }
                None => {
                    tracing::warn!(channel = %self.channel, "the RabbitMQ consumer was cancelled; reconnecting");
                    self.drop_link();
                }
            }
        }
    }

    /// Leaves a failed link: its unsent acks are lost with it (the broker delivers those
    /// messages again).
    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            link.acks.close();
        }
    }

    /// Stops consuming: sends the acks of every settled delivery, then closes the connection
    /// (deliveries still held go back to the queue). Waits at most 5 s for each.
    pub async fn close(mut self) {
        if let Some(link) = self.link.take() {
            link.acks.close();
            let _ = tokio::time::timeout(Duration::from_secs(5), link.flusher).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), link.link.close()).await;
        }
    }

    async fn subscribe(&self, patience: Option<Duration>) -> Result<ConsumerLink, QueueError> {
        let queue = self.shared.send_queue(&self.channel);
        let role = format!("consumer {}", self.channel);
        let start = || async {
            let link = self
                .shared
                .open_with_backoff(&role, false, patience.or(Some(BROKER_PATIENCE)))
                .await?;
            let subscribed = async {
                link.channel
                    .basic_qos(self.shared.prefetch, BasicQosOptions::default())
                    .await?;
                link.channel
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            }
            .await;
            match subscribed {
                Ok(deliveries) => {
                    let acks = Acks::new(link.channel.clone(), self.shared.prefetch);
                    let flusher = tokio::spawn(acks.clone().flush());
                    Ok(ConsumerLink {
                        link,
                        deliveries,
                        acks,
                        flusher,
                    })
                }
                Err(e) => {
                    link.close().await;
                    Err(broker(format!("cannot consume from {queue}: {e}")))
                }
            }
        };
        match patience {
            Some(_) => start().await,
            None => start
                .retry(backoff(None))
                .sleep(tokio::time::sleep)
                .notify(|e, wait| tracing::warn!(channel = %self.channel, error = %e, ?wait, "cannot consume yet; retrying"))
                .await,
        }
    }

    async fn receive(
        &mut self,
        delivery: lapin::message::Delivery,
        hold: Hold,
    ) -> Result<RabbitDelivery, QueueError> {
        match QueueMessage::from_bytes(&delivery.data) {
            Ok(message) => Ok(RabbitDelivery {
                received: Received {
                    message,
                    redelivered: delivery.redelivered,
                },
                hold,
                shared: self.shared.clone(),
            }),
            Err(_) => {
                let reason = unreadable(&delivery.data);
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.as_str().to_string());
                let dead = Outgoing {
                    exchange: String::new(),
                    routing_key: self.shared.dead_queue(&self.channel),
                    properties: properties(id.as_deref().unwrap_or(""), Some(&reason)),
                    body: delivery.data,
                };
                // Cancelled while moving it, the hold is dropped: the message goes back.
                if let Err(e) = self.shared.publish(std::slice::from_ref(&dead)).await {
                    hold.requeue();
                    return Err(e);
                }
                hold.settle();
                tracing::warn!(channel = %self.channel, message_id = id.as_deref().unwrap_or("-"), "moved an unreadable queue message to the dead-letter queue");
                Err(QueueError::Poison(reason))
            }
        }
    }
}

/// A delivery to settle exactly once with [`RabbitDelivery::settle`]; dropped unsettled (its
/// task failed), it is returned to the queue at once, so the acks behind it go on.
pub struct RabbitDelivery {
    pub received: Received,
    hold: Hold,
    shared: Arc<Shared>,
}

impl RabbitDelivery {
    /// Ack removes it. Retry publishes a copy with `attempt + 1` to the delay tier (confirmed),
    /// then acks; at `max_attempts` it is dead-lettered instead, as "gave up after N attempts:
    /// <reason>". DeadLetter publishes it to the channel's dead-letter queue with the header
    /// `x-carehub-reason` (confirmed), then acks. If the copy cannot be published, the
    /// delivery is returned to the queue and the error returned.
    ///
    /// The ack itself is sent by the subscription's flusher, gathered with others into one
    /// `multiple` ack (see `acks.rs`): Ok means the outcome is settled here, not yet that the
    /// broker has the ack; should the link drop first, the broker delivers the message again
    /// (at least once, as ever).
    pub async fn settle(self, settle: Settle) -> Result<(), QueueError> {
        let message = &self.received.message;
        let shared = &self.shared;
        let copy = match settle {
            Settle::Ack => None,
            Settle::Retry { delay, reason } => {
                let attempt = message.attempt.saturating_add(1);
                if attempt >= shared.max_attempts {
                    Some(dead_letter(
                        shared,
                        message,
                        &format!("gave up after {attempt} attempts: {reason}"),
                    ))
                } else {
                    let retried = QueueMessage {
                        attempt,
                        ..message.clone()
                    };
                    Some(Outgoing {
                        exchange: shared.delay_tier(delay_tier_ms(delay)),
                        routing_key: message.channel.clone(),
                        body: retried.to_bytes(),
                        properties: properties(&message.notification, None),
                    })
                }
            }
            Settle::DeadLetter { reason } => Some(dead_letter(shared, message, &reason)),
        };
        let published = match copy {
            Some(copy) => shared.publish(std::slice::from_ref(&copy)).await,
            None => Ok(()),
        };
        // Cancelled before this point, the delivery is dropped unsettled and requeued.
        match published {
            Ok(()) => {
                self.hold.settle();
                Ok(())
            }
            Err(e) => {
                self.hold.requeue();
                Err(e)
            }
        }
    }
}

fn dead_letter(shared: &Shared, message: &QueueMessage, reason: &str) -> Outgoing {
    Outgoing {
        exchange: String::new(),
        routing_key: shared.dead_queue(&message.channel),
        body: message.to_bytes(),
        properties: properties(&message.notification, Some(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_body_is_described_without_its_content() {
        let reason = unreadable(br#"{"notification": "Nguyen Van A", "channel": 5}"#);
        assert!(reason.starts_with("unreadable queue message"), "{reason}");
        assert!(!reason.contains("Nguyen"), "{reason}");
        let reason = unreadable(b"not json at all");
        assert!(reason.contains("JSON syntax"), "{reason}");
    }
}
