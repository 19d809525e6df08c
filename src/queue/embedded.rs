//! The embedded queue (`queue.kind: embedded`): a table in the store, for a hub without a
//! broker. Same contract as RabbitMQ's: a delivery is hidden from other consumers while held,
//! comes back when its holder dies (after `visibility_secs`), retries wait their delay, and a
//! message that keeps failing or cannot be read ends in the dead letters with its reason.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::{DeadLetter, QueueConfig, QueueError, QueueMessage, Received, Settle};
use crate::store::Store;

/// The queue of one store.
#[derive(Clone, Debug)]
pub struct EmbeddedQueue {
    store: Store,
    config: Arc<QueueConfig>,
    /// Wakes this process's consumers when something is published.
    published: Arc<Notify>,
    /// Acknowledgements deleted in groups by one task (one commit for many), for a store that
    /// does not group its writes itself (PostgreSQL; SQLite's outbox writer does).
    acks: Option<mpsc::Sender<Ack>>,
}

type Ack = (i64, oneshot::Sender<Result<(), String>>);

fn queue_name(channel: &str) -> String {
    format!("send.{channel}")
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The store's rows of these messages, available now: (queue, message id, payload, available at).
fn rows(messages: &[QueueMessage]) -> Vec<(String, String, String, i64)> {
    let at = now_ms();
    messages
        .iter()
        .map(|m| {
            let payload = String::from_utf8(m.to_bytes()).expect("JSON is UTF-8");
            (queue_name(&m.channel), m.notification.clone(), payload, at)
        })
        .collect()
}

fn store_error(e: crate::store::StoreError) -> QueueError {
    QueueError::Store(e.to_string())
}

impl EmbeddedQueue {
    /// The queue of `store`. On a store that does not group its writes, starts the task that
    /// deletes acknowledged messages (it ends with the last clone of the queue); needs a Tokio
    /// runtime then.
    pub fn new(store: Store, config: &QueueConfig) -> EmbeddedQueue {
        let acks = (!store.groups_send_writes()).then(|| {
            let (acks, mut rx) = mpsc::channel::<Ack>(1024);
            let deleter = store.clone();
            tokio::spawn(async move {
                while let Some(first) = rx.recv().await {
                    let mut group = vec![first];
                    while group.len() < 512 {
                        match rx.try_recv() {
                            Ok(ack) => group.push(ack),
                            Err(_) => break,
                        }
                    }
                    let ids: Vec<i64> = group.iter().map(|(id, _)| *id).collect();
                    let result = deleter.queue_ack(&ids).await.map_err(|e| e.to_string());
                    for (_, reply) in group {
                        let _ = reply.send(result.clone());
                    }
                }
            });
            acks
        });
        EmbeddedQueue {
            store,
            config: Arc::new(config.clone()),
            published: Arc::new(Notify::new()),
            acks,
        }
    }

    /// The relay's publish: stages the sends, queues them and marks them queued, in one
    /// transaction where the store allows (see [`Store::stage_and_enqueue`]). Each send comes
    /// with the provider calls its row had when the relay read it.
    /// `messages`: one per send, in the same order.
    pub async fn stage_and_publish(
        &self,
        sends: &[(crate::store::Resolved, i64)],
        messages: &[QueueMessage],
    ) -> Result<(), QueueError> {
        self.store
            .stage_and_enqueue(sends, &rows(messages))
            .await
            .map_err(store_error)?;
        self.published.notify_waiters();
        Ok(())
    }

    /// Publishes in one transaction: when it returns Ok, every message is stored.
    pub async fn publish(&self, messages: &[QueueMessage]) -> Result<(), QueueError> {
        self.store
            .queue_push(&rows(messages))
            .await
            .map_err(store_error)?;
        self.published.notify_waiters();
        Ok(())
    }

    /// Publishes a raw body (tests: a poison message).
    pub async fn publish_raw(&self, channel: &str, body: &str) -> Result<(), QueueError> {
        let rows = [(queue_name(channel), String::new(), body.to_string(), now_ms())];
        self.store.queue_push(&rows).await.map_err(store_error)?;
        self.published.notify_waiters();
        Ok(())
    }

    pub fn consume(&self, channel: &str) -> EmbeddedConsumer {
        EmbeddedConsumer {
            queue: self.clone(),
            name: queue_name(channel),
            buffer: VecDeque::new(),
        }
    }

    pub async fn depth(&self, channel: &str) -> Result<u64, QueueError> {
        let n = self
            .store
            .queue_depth(&queue_name(channel))
            .await
            .map_err(store_error)?;
        Ok(n.max(0) as u64)
    }

    pub async fn dead_letters(&self, channel: &str) -> Result<Vec<DeadLetter>, QueueError> {
        let rows = self
            .store
            .queue_dead_letters(&queue_name(channel))
            .await
            .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(payload, reason)| DeadLetter {
                message: QueueMessage::from_bytes(payload.as_bytes()).unwrap_or(QueueMessage {
                    notification: String::new(),
                    channel: channel.to_string(),
                    attempt: 0,
                }),
                reason,
            })
            .collect())
    }
}

/// A consumer of one channel's queue.
pub struct EmbeddedConsumer {
    queue: EmbeddedQueue,
    name: String,
    buffer: VecDeque<crate::store::QueueRow>,
}

impl EmbeddedConsumer {
    /// The next delivery; waits (polling the store, woken early by local publishes) until one
    /// is ready. A store outage is waited out, not returned.
    pub async fn next(&mut self) -> Result<EmbeddedDelivery, QueueError> {
        let mut idle = Duration::from_millis(20);
        loop {
            if let Some(row) = self.buffer.pop_front() {
                let redelivered = row.deliveries > 1;
                match QueueMessage::from_bytes(row.payload.as_bytes()) {
                    Ok(message) => {
                        return Ok(EmbeddedDelivery {
                            queue: self.queue.clone(),
                            id: row.id,
                            received: Received { message, redelivered },
                        });
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        self.queue
                            .store
                            .queue_dead(row.id, &reason)
                            .await
                            .map_err(store_error)?;
                        tracing::warn!(queue = %self.name, id = row.id, "unreadable queue message moved to the dead letters");
                        return Err(QueueError::Poison(reason));
                    }
                }
            }
            let now = now_ms();
            let hold = self.queue.config.visibility_secs.max(1) as i64 * 1000;
            let limit = i64::from(self.queue.config.prefetch.max(1));
            // Wait for the wake-up before looking, so a publish between the look and the
            // wait is not missed.
            let woken = self.queue.published.notified();
            match self
                .queue
                .store
                .queue_claim(&self.name, now, now + hold, limit)
                .await
            {
                Ok(rows) if !rows.is_empty() => {
                    self.buffer.extend(rows);
                    idle = Duration::from_millis(20);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(queue = %self.name, error = %e, "the embedded queue cannot be read; waiting");
                    idle = Duration::from_secs(1);
                }
            }
            let _ = tokio::time::timeout(idle, woken).await;
            idle = (idle * 2).min(Duration::from_millis(500));
        }
    }
}

/// A held delivery of the embedded queue.
pub struct EmbeddedDelivery {
    queue: EmbeddedQueue,
    id: i64,
    pub received: Received,
}

impl EmbeddedDelivery {
    pub async fn settle(self, settle: Settle) -> Result<(), QueueError> {
        let store = &self.queue.store;
        match settle {
            // Acknowledgements from many workers share a commit: through the deleting task, or
            // the store's own grouping (SQLite's outbox writer).
            Settle::Ack => match &self.queue.acks {
                Some(acks) => {
                    let (reply, done) = oneshot::channel();
                    let gone = || QueueError::Store("the embedded queue stopped".into());
                    acks.send((self.id, reply)).await.map_err(|_| gone())?;
                    return done.await.map_err(|_| gone())?.map_err(QueueError::Store);
                }
                None => store.queue_ack(&[self.id]).await,
            },
            Settle::Retry { delay, reason } => {
                let mut next = self.received.message.clone();
                next.attempt += 1;
                if next.attempt >= self.queue.config.max_attempts {
                    let why = format!("gave up after {} attempts: {reason}", next.attempt);
                    store.queue_dead(self.id, &why).await
                } else {
                    let payload = String::from_utf8(next.to_bytes()).expect("JSON is UTF-8");
                    let at = now_ms() + delay.as_millis().min(i64::MAX as u128) as i64;
                    store.queue_retry(self.id, &payload, at).await
                }
            }
            Settle::DeadLetter { reason } => store.queue_dead(self.id, &reason).await,
        }
        .map_err(store_error)
    }
}
