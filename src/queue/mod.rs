//! The queue between the outbox and the channel workers: RabbitMQ (`rabbit.rs`, lapin) or the
//! embedded queue (`embedded.rs`, a table in the store), with one consumer contract: a
//! delivery is settled exactly once (ack, retry after a delay, or dead letter with a reason);
//! one that is never settled (its consumer died) is delivered again, marked `redelivered`.

mod embedded;
mod rabbit;
mod types;

pub use embedded::{EmbeddedConsumer, EmbeddedDelivery, EmbeddedQueue};
pub use rabbit::{RabbitConsumer, RabbitDelivery, RabbitQueue};
pub use types::*;

/// The queue the hub was configured with.
#[derive(Clone, Debug)]
pub enum Queue {
    Embedded(EmbeddedQueue),
    Rabbit(RabbitQueue),
}

/// A consumer of one channel's queue.
pub enum Consumer {
    Embedded(EmbeddedConsumer),
    Rabbit(Box<RabbitConsumer>),
}

/// A held delivery.
pub enum Delivery {
    Embedded(EmbeddedDelivery),
    Rabbit(RabbitDelivery),
}

impl Queue {
    /// Opens the configured queue: the store's table, or the broker (declaring its topology
    /// for these channels).
    pub async fn open(
        config: &QueueConfig,
        store: &crate::store::Store,
        channels: &[String],
    ) -> Result<Queue, QueueError> {
        match config.kind {
            QueueKind::Embedded => Ok(Queue::Embedded(EmbeddedQueue::new(store.clone(), config))),
            QueueKind::Rabbitmq => {
                let q = RabbitQueue::connect(config).await?;
                q.declare(channels).await?;
                Ok(Queue::Rabbit(q))
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Queue::Embedded(_) => "embedded",
            Queue::Rabbit(_) => "rabbitmq",
        }
    }

    /// Publishes; Ok only once every message is durably queued (confirmed by the broker).
    pub async fn publish(&self, messages: &[QueueMessage]) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(q) => q.publish(messages).await,
            Queue::Rabbit(q) => q.publish(messages).await,
        }
    }

    pub async fn consume(&self, channel: &str) -> Result<Consumer, QueueError> {
        match self {
            Queue::Embedded(q) => Ok(Consumer::Embedded(q.consume(channel))),
            Queue::Rabbit(q) => Ok(Consumer::Rabbit(Box::new(q.consume(channel).await?))),
        }
    }

    /// Messages waiting in a channel's queue.
    pub async fn depth(&self, channel: &str) -> Result<u64, QueueError> {
        match self {
            Queue::Embedded(q) => q.depth(channel).await,
            Queue::Rabbit(q) => q.depth(channel).await,
        }
    }

    pub async fn dead_letters(&self, channel: &str) -> Result<Vec<DeadLetter>, QueueError> {
        match self {
            Queue::Embedded(q) => q.dead_letters(channel).await,
            Queue::Rabbit(q) => q.dead_letters(channel).await,
        }
    }
}

impl Consumer {
    pub async fn next(&mut self) -> Result<Delivery, QueueError> {
        match self {
            Consumer::Embedded(c) => c.next().await.map(Delivery::Embedded),
            Consumer::Rabbit(c) => c.next().await.map(Delivery::Rabbit),
        }
    }

    /// Stops consuming once the deliveries are settled: RabbitMQ's gathered acks are sent
    /// before its connection closes (the embedded queue settles each in the store at once).
    pub async fn close(self) {
        match self {
            Consumer::Embedded(_) => {}
            Consumer::Rabbit(c) => c.close().await,
        }
    }
}

impl Delivery {
    pub fn received(&self) -> &Received {
        match self {
            Delivery::Embedded(d) => &d.received,
            Delivery::Rabbit(d) => &d.received,
        }
    }

    pub async fn settle(self, settle: Settle) -> Result<(), QueueError> {
        match self {
            Delivery::Embedded(d) => d.settle(settle).await,
            Delivery::Rabbit(d) => d.settle(settle).await,
        }
    }
}
