//! The subscription relay: every pass it turns new change events into deliveries (one per
//! subscription that wants the event, the subscription's mark moved in the same
//! transaction), publishes pending deliveries to the queue and marks them queued once the
//! queue confirmed. Every few minutes it prunes change events no one waits for.
//! A crash between publish and mark publishes again: the receiver de-duplicates by id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Hooks, QUEUE_CHANNEL};
use crate::queue::QueueMessage;

/// Events read per subscription, and deliveries published, per pass.
const PAGE: i64 = 500;
/// Delivered and failed deliveries are kept this long (the API counts them).
const KEEP_DAYS: i64 = 7;

pub async fn run(h: Arc<Hooks>, mut shutdown: watch::Receiver<bool>) {
    let mut pruned = Instant::now();
    loop {
        let busy = match pass(&h).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "The subscription relay failed a pass; trying again.");
                false
            }
        };
        if pruned.elapsed() > Duration::from_secs(300) {
            pruned = Instant::now();
            match h.store.prune_changes(KEEP_DAYS).await {
                Ok(n) if n > 0 => tracing::debug!(events = n, "Change events pruned."),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Pruning change events failed."),
            }
        }
        let wait = if busy {
            Duration::ZERO
        } else {
            Duration::from_millis(250)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// One pass; answers whether it found work (the next pass then follows at once).
async fn pass(h: &Hooks) -> Result<bool, String> {
    let subs = h.store.subscriptions().await.map_err(|e| e.to_string())?;
    h.store.rules().changes.set(!subs.is_empty());
    let mut busy = false;
    for s in &subs {
        let read = h.store.fan_out(s, PAGE).await.map_err(|e| e.to_string())?;
        busy |= read as i64 == PAGE;
    }
    let ids = h
        .store
        .pending_deliveries(PAGE)
        .await
        .map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Ok(busy);
    }
    let messages: Vec<QueueMessage> = ids
        .iter()
        .map(|id| QueueMessage {
            notification: id.clone(),
            channel: QUEUE_CHANNEL.to_string(),
            attempt: 0,
        })
        .collect();
    h.queue.publish(&messages).await.map_err(|e| e.to_string())?;
    h.store.deliveries_queued(&ids).await.map_err(|e| e.to_string())?;
    Ok(busy || ids.len() as i64 == PAGE)
}
