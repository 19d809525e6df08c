//! The subscription worker: consumes [`QUEUE_CHANNEL`], POSTs each delivery signed, records
//! the outcome, then settles the queue message — a 2xx delivers, anything else (a refused
//! connection, a timeout, a 5xx, a 4xx) is retried after the queue's backoff (at least the
//! receiver's `Retry-After`) until `queue.max_attempts`, then the delivery fails and its queue
//! message is dead-lettered. Logs name the subscription and the delivery, never a body.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::payload::{self, EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};
use super::{Hooks, QUEUE_CHANNEL};
use crate::queue::{QueueError, Received, Settle};

pub async fn run(h: Arc<Hooks>, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(h.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let last = 'connect: loop {
        let mut consumer = match h.queue.consume(QUEUE_CHANNEL).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot consume subscription deliveries; retrying.");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue 'connect,
                    _ = shutdown.wait_for(|s| *s) => break 'connect None,
                }
            }
        };
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = shutdown.wait_for(|s| *s) => break 'connect Some(consumer),
            };
            let delivery = tokio::select! {
                d = consumer.next() => d,
                _ = shutdown.wait_for(|s| *s) => break 'connect Some(consumer),
            };
            match delivery {
                Ok(delivery) => {
                    let h = h.clone();
                    tasks.spawn(async move {
                        let settle = handle(&h, delivery.received()).await;
                        if let Err(e) = delivery.settle(settle).await {
                            tracing::warn!(error = %e, "Cannot settle a subscription delivery.");
                        }
                        drop(permit);
                    });
                }
                Err(QueueError::Poison(_)) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "The queue failed; consuming subscription deliveries again.");
                    continue 'connect;
                }
            }
            while tasks.try_join_next().is_some() {}
        }
    };
    while tasks.join_next().await.is_some() {}
    if let Some(consumer) = last {
        consumer.close().await;
    }
}

/// POSTs one queued delivery and says how to settle its message.
pub async fn handle(h: &Hooks, received: &Received) -> Settle {
    let m = &received.message;
    let d = match h.store.delivery_to_send(&m.notification).await {
        Ok(Some(d)) => d,
        // Its subscription was deleted (or the delivery pruned): nothing to send.
        Ok(None) => return Settle::Ack,
        Err(e) => {
            return Settle::Retry {
                delay: Duration::from_secs(5),
                reason: format!("store unavailable: {e}"),
            };
        }
    };
    if matches!(d.status.as_str(), "delivered" | "failed") {
        return Settle::Ack;
    }
    let secret = match d.subscription.origin.as_str() {
        "config" => h
            .secrets
            .get(&d.subscription.name)
            .map(|s| s.expose().to_string()),
        _ => d.subscription.secret.clone(),
    };
    let Some(secret) = secret else {
        let reason = "no secret for this subscription (is it still configured?)".to_string();
        let _ = h.store.delivery_outcome(&d.id, "failed", &reason).await;
        return Settle::DeadLetter { reason };
    };
    let (body, content_type) = payload::body(&d);
    let request = h
        .http
        .post(&d.subscription.url)
        .timeout(h.timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(SIGNATURE_HEADER, payload::signature(&secret, &body))
        .header(EVENT_ID_HEADER, &d.event_id)
        .header(EVENT_HEADER, &d.event)
        .body(body);
    let (ok, detail, after) = match request.send().await {
        Ok(r) if r.status().is_success() => (true, format!("HTTP {}", r.status().as_u16()), None),
        Ok(r) => (
            false,
            format!("HTTP {}", r.status().as_u16()),
            crate::retry_after::retry_after(r.headers()),
        ),
        Err(e) if e.is_timeout() => (false, "no answer in time".to_string(), None),
        Err(e) if e.is_connect() => (false, "cannot connect".to_string(), None),
        Err(_) => (false, "request failed".to_string(), None),
    };
    let exhausted = m.attempt + 1 >= h.queue_config.max_attempts;
    let (status, settle) = if ok {
        ("delivered".to_string(), Settle::Ack)
    } else if exhausted {
        let reason = format!("gave up after {} attempts: {detail}", m.attempt + 1);
        ("failed".to_string(), Settle::DeadLetter { reason })
    } else {
        let delay = h.queue_config.retry_delay(m.attempt, after);
        (
            "queued".to_string(),
            Settle::Retry {
                delay,
                reason: detail.clone(),
            },
        )
    };
    tracing::info!(
        subscription = %d.subscription.name,
        delivery = %d.id,
        attempt = m.attempt,
        outcome = %detail,
        "Subscription delivery attempted."
    );
    if let Err(e) = h.store.delivery_outcome(&d.id, &status, &detail).await {
        // Not recorded: retried, and the receiver may get it again (it de-duplicates by id).
        tracing::warn!(delivery = %d.id, error = %e, "Cannot record a subscription delivery's outcome.");
        return Settle::Retry {
            delay: Duration::from_secs(5),
            reason: format!("outcome not recorded: {e}"),
        };
    }
    settle
}
