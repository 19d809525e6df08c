//! Declaring, deleting and reading the RabbitMQ topology (names and arguments in `mod.rs`'s
//! doc and `docs/queue.md`). Must not publish or consume: that is `mod.rs` and `consumer.rs`.

use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};

use super::{DEAD_DELIVERY_LIMIT, DELAY_TIERS_MS, REASON_HEADER, SEND_DELIVERY_LIMIT, Shared};
use crate::queue::types::{DeadLetter, QueueMessage};

impl Shared {
    pub(super) async fn declare_on(&self, ch: &Channel, channels: &[String]) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let exchange = self.exchange();
        ch.exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
        for ms in DELAY_TIERS_MS {
            let tier = self.delay_tier(ms);
            ch.exchange_declare(
                tier.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
            let mut args = quorum_args();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
            args.insert("x-dead-letter-exchange".into(), long(&exchange));
            at_least_once(&mut args);
            declare_queue(ch, &tier, args).await?;
            ch.queue_bind(
                tier.as_str().into(),
                tier.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        for channel in channels {
            let dead = self.dead_queue(channel);
            let mut args = quorum_args();
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(DEAD_DELIVERY_LIMIT),
            );
            declare_queue(ch, &dead, args).await?;

            let send = self.send_queue(channel);
            let mut args = quorum_args();
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(SEND_DELIVERY_LIMIT),
            );
            args.insert("x-dead-letter-exchange".into(), long(""));
            args.insert("x-dead-letter-routing-key".into(), long(&dead));
            at_least_once(&mut args);
            declare_queue(ch, &send, args).await?;
            ch.queue_bind(
                send.as_str().into(),
                exchange.as_str().into(),
                channel.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }

    pub(super) async fn delete_on(&self, ch: &Channel, channels: &[String]) -> Result<(), lapin::Error> {
        let mut queues: Vec<String> = Vec::new();
        for channel in channels {
            queues.push(self.send_queue(channel));
            queues.push(self.dead_queue(channel));
        }
        queues.extend(DELAY_TIERS_MS.iter().map(|&ms| self.delay_tier(ms)));
        for queue in &queues {
            ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for ms in DELAY_TIERS_MS {
            ch.exchange_delete(
                self.delay_tier(ms).as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        }
        ch.exchange_delete(self.exchange().as_str().into(), ExchangeDeleteOptions::default())
            .await
    }
}

pub(super) fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args
}

/// Broker dead-lettering that keeps a message until the target queue confirmed it.
fn at_least_once(args: &mut FieldTable) {
    args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
    args.insert("x-overflow".into(), long("reject-publish"));
}

async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) -> Result<(), lapin::Error> {
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), options, args).await.map(|_| ())
}

/// A dead letter as ops see it. An unreadable body becomes a message with the broker's
/// `message_id` (if any) and attempt 0; a message the broker dead-lettered itself (delivery
/// limit) gets its reason from the `x-death` header.
pub(super) fn read_dead_letter(channel: &str, delivery: &lapin::message::Delivery) -> DeadLetter {
    let message = QueueMessage::from_bytes(&delivery.data).unwrap_or_else(|_| QueueMessage {
        notification: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_string())
            .unwrap_or_default(),
        channel: channel.to_string(),
        attempt: 0,
    });
    let headers = delivery.properties.headers().as_ref();
    let reason = headers
        .and_then(|h| h.inner().get(REASON_HEADER))
        .and_then(text)
        .or_else(|| headers.and_then(death_reason))
        .unwrap_or_else(|| "dead-lettered without a reason".into());
    DeadLetter { message, reason }
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// `x-death[0].reason` as a sentence (`delivery_limit`, `expired`, `rejected`, `maxlen`).
fn death_reason(headers: &FieldTable) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    let reason = first.inner().get("reason").and_then(text)?;
    Some(match reason.as_str() {
        "delivery_limit" => format!(
            "returned to its queue more than {SEND_DELIVERY_LIMIT} times (consumers stopped while holding it)"
        ),
        other => format!("dead-lettered by the broker: {other}"),
    })
}
