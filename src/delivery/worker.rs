//! Channel workers: one consumer per channel, a few sends at once. A worker claims the send in
//! the store before calling the provider and records the outcome before it settles the queue
//! message, so a message delivered again after a crash finds the send done and is only
//! acknowledged: the provider gets it twice only when the first call's outcome was unknown
//! (and then with the same idempotency key).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::Services;
use super::ledger::Ledger;
use crate::channels::{Channel, Outbound, SendError};
use crate::queue::{QueueError, Received, Settle};
use crate::store::{AttemptOutcome, Claim, SendClaim};

/// Consumes a channel's queue until shutdown; reconnects when the queue fails.
pub async fn run(s: Arc<Services>, channel: Arc<Channel>, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(s.config.concurrency.max(1)));
    // A store that groups the workers' writes itself (SQLite) gets them directly; one more
    // gathering in front of it would only add a hop.
    let ledger = if s.store.groups_send_writes() {
        Ledger::Direct(s.store.clone())
    } else {
        Ledger::grouped(s.store.clone())
    };
    let mut tasks = JoinSet::new();
    // The consumer at shutdown, closed once the sends in flight have settled.
    let last = 'connect: loop {
        let mut consumer = match s.queue.consume(channel.name()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(channel = channel.name(), error = %e, "cannot consume; retrying");
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
                d = consumer.next() => Some(d),
                _ = shutdown.wait_for(|s| *s) => None,
            };
            let Some(delivery) = delivery else {
                break 'connect Some(consumer);
            };
            match delivery {
                Ok(delivery) => {
                    let (s, channel, ledger) = (s.clone(), channel.clone(), ledger.clone());
                    tasks.spawn(async move {
                        let settle = handle_with(&s, &channel, &ledger, delivery.received()).await;
                        if let Err(e) = delivery.settle(settle).await {
                            // Unsettled: the queue delivers it again, and the claim finds it done.
                            tracing::warn!(channel = channel.name(), error = %e, "cannot settle a delivery");
                        }
                        drop(permit);
                    });
                }
                Err(QueueError::Poison(_)) => continue,
                Err(e) => {
                    tracing::warn!(channel = channel.name(), error = %e, "the queue failed; consuming again");
                    continue 'connect;
                }
            }
            while tasks.try_join_next().is_some() {}
        }
    };
    // Sends in flight finish and record their outcome; then their acks go out.
    while tasks.join_next().await.is_some() {}
    if let Some(consumer) = last {
        consumer.close().await;
    }
}

/// The zone quiet hours are read in for a send: the person's, as the relay staged it, or the
/// clinic's.
fn send_zone(s: &Services, send: &crate::store::ClaimedSend) -> jiff::tz::TimeZone {
    send.timezone
        .as_deref()
        .and_then(|t| jiff::tz::TimeZone::get(t).ok())
        .unwrap_or_else(|| s.rules.timezone.clone())
}

/// Sends one queued message and says how to settle it (each store write in its own
/// transaction; the running workers group theirs).
pub async fn handle(s: &Services, channel: &Channel, received: &Received) -> Settle {
    handle_with(s, channel, &Ledger::Direct(s.store.clone()), received).await
}

async fn handle_with(s: &Services, channel: &Channel, ledger: &Ledger, received: &Received) -> Settle {
    let m = &received.message;
    // The rate limit's turn first: the hold on the send then covers the call, not the wait.
    channel.ready().await;
    let now = jiff::Timestamp::now().as_millisecond();
    let lease = s.config.lease_secs.max(1) as i64 * 1000;
    let request = SendClaim {
        id: m.notification.clone(),
        channel: channel.name().to_string(),
        now_ms: now,
        lease_ms: lease,
    };
    let claim = match ledger.claim(request).await {
        Ok(c) => c,
        Err(e) => {
            return Settle::Retry {
                delay: Duration::from_secs(5),
                reason: format!("store unavailable: {e}"),
            };
        }
    };
    let send = match claim {
        Claim::Send(send) => send,
        Claim::Settled(status) => {
            tracing::debug!(notification = %m.notification, %status, "already settled; acknowledged");
            return Settle::Ack;
        }
        // Another worker holds it: that worker settles it, or — should it have died — the
        // relay's sweep hands it out again once the hold has long run out.
        Claim::Busy => return Settle::Ack,
        Claim::Missing => {
            return Settle::DeadLetter {
                reason: format!("no notification {}", m.notification),
            };
        }
    };
    let outbound = Outbound {
        id: send.id.clone(),
        to: send.address.clone(),
        subject: send.title.clone(),
        body: send.body.clone(),
        language: send.language.clone(),
    };
    // A retry (or a backlog) that reaches quiet hours waits for their end, with no attempt used.
    let rule_quiet = s.rules.rule(&send.rule).is_none_or(|r| r.config.quiet_hours);
    if rule_quiet
        && let Some(q) = &s.config.quiet_hours
        && let Some(until) = super::checks::quiet_until(q, jiff::Timestamp::now(), &send_zone(s, &send))
    {
        let deferred = AttemptOutcome {
            id: send.id.clone(),
            channel: channel.name().to_string(),
            outcome: "deferred",
            provider_id: None,
            detail: Some("quiet hours".into()),
            status: "pending",
            due_at: Some(until.as_millisecond()),
        };
        s.store.metrics().send(channel.name(), "deferred", None);
        return match ledger.record(deferred).await {
            Ok(()) => Settle::Ack,
            Err(e) => Settle::Retry {
                delay: Duration::from_secs(5),
                reason: format!("store unavailable: {e}"),
            },
        };
    }
    let called = std::time::Instant::now();
    let result = channel.send_now(&outbound).await;
    let took = called.elapsed();
    // Provider calls of this send so far (the row's count), not queue deliveries.
    let exhausted = send.attempts as u64 + 1 >= u64::from(s.queue_config.max_attempts);
    let (outcome, settle) = match result {
        Ok(sent) => {
            let status = if sent.delivered { "delivered" } else { "sent" };
            (
                AttemptOutcome {
                    id: send.id.clone(),
                    channel: channel.name().to_string(),
                    outcome: status,
                    provider_id: sent.provider_id,
                    detail: None,
                    status,
                    due_at: None,
                },
                Settle::Ack,
            )
        }
        Err(e @ (SendError::Retry { .. } | SendError::Unknown { .. })) => {
            let (after, label) = match &e {
                SendError::Retry { after, .. } => (*after, "retry"),
                _ => (None, "unknown"),
            };
            let delay = s.queue_config.retry_delay(m.attempt, after);
            let detail = e.to_string();
            (
                AttemptOutcome {
                    id: send.id.clone(),
                    channel: channel.name().to_string(),
                    outcome: label,
                    provider_id: None,
                    detail: Some(if exhausted {
                        format!("gave up after {} attempts: {detail}", send.attempts + 1)
                    } else {
                        detail.clone()
                    }),
                    status: if exhausted { "failed" } else { "queued" },
                    due_at: None,
                },
                if exhausted {
                    Settle::DeadLetter {
                        reason: format!("gave up after {} attempts: {detail}", send.attempts + 1),
                    }
                } else {
                    Settle::Retry {
                        delay,
                        reason: detail,
                    }
                },
            )
        }
        Err(SendError::Permanent { reason }) => {
            // Back to the relay, which tries the rule's next channel, or fails for good.
            (
                AttemptOutcome {
                    id: send.id.clone(),
                    channel: channel.name().to_string(),
                    outcome: "rejected",
                    provider_id: None,
                    detail: Some(reason),
                    status: "pending",
                    due_at: Some(now),
                },
                Settle::Ack,
            )
        }
    };
    s.store
        .metrics()
        .send(channel.name(), outcome.outcome, Some(took));
    if matches!(outcome.outcome, "sent" | "delivered") {
        tracing::debug!(notification = %send.id, channel = channel.name(), outcome = outcome.outcome, "provider call");
    } else {
        tracing::info!(
            notification = %send.id,
            channel = channel.name(),
            outcome = outcome.outcome,
            attempt = m.attempt,
            "provider call"
        );
    }
    if let Err(e) = ledger.record(outcome).await {
        // The outcome is not recorded: the send is retried and may reach the provider again
        // (with the same idempotency key) — the one case the contract allows.
        tracing::warn!(notification = %send.id, error = %e, "cannot record a send's outcome");
        return Settle::Retry {
            delay: Duration::from_secs(5),
            reason: format!("outcome not recorded: {e}"),
        };
    }
    settle
}
