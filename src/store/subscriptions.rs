//! The store's door for change notifications (`crate::subscriptions`): subscriptions, the
//! fan-out of change events into deliveries, and the deliveries' outcomes. The SQL is in
//! `sql_subscriptions.rs`, once for both backends.

use super::{Backend, Store, StoreError};
use super::{DeliveryCounts, DeliveryToSend, SubscriptionRow};

macro_rules! either {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $call,
            Backend::Postgres($s) => $call,
        }
    };
}

impl Store {
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        either!(self, s => s.subscriptions().await)
    }

    /// Turns ingest's change events on when some subscription exists, off when none does
    /// (every replica calls it on each relay pass). Answers whether they are on.
    pub async fn refresh_change_feed(&self) -> Result<bool, StoreError> {
        let on = either!(self, s => s.subscription_count().await)? > 0;
        self.rules.changes.set(on);
        Ok(on)
    }

    /// The configured subscriptions as the configuration says now (see `sql_subscriptions.rs`).
    pub async fn sync_configured_subscriptions(&self, rows: &[SubscriptionRow]) -> Result<(), StoreError> {
        either!(self, s => s.sync_configured_subscriptions(rows).await)?;
        self.refresh_change_feed().await.map(|_| ())
    }

    pub async fn create_subscription(&self, row: &SubscriptionRow) -> Result<SubscriptionRow, StoreError> {
        let made = either!(self, s => s.create_subscription(row).await)?;
        self.rules.changes.set(true);
        Ok(made)
    }

    pub async fn delete_subscription(&self, name: &str) -> Result<(), StoreError> {
        either!(self, s => s.delete_subscription(name).await)?;
        self.refresh_change_feed().await.map(|_| ())
    }

    pub async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryCounts)>, StoreError> {
        either!(self, s => s.delivery_counts().await)
    }

    pub async fn fan_out(&self, subscription: &SubscriptionRow, limit: i64) -> Result<usize, StoreError> {
        either!(self, s => s.fan_out(subscription, limit).await)
    }

    pub async fn pending_deliveries(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        either!(self, s => s.pending_deliveries(limit).await)
    }

    pub async fn deliveries_queued(&self, ids: &[String]) -> Result<(), StoreError> {
        either!(self, s => s.deliveries_queued(ids).await)
    }

    pub async fn delivery_to_send(&self, id: &str) -> Result<Option<DeliveryToSend>, StoreError> {
        either!(self, s => s.delivery_to_send(id).await)
    }

    pub async fn delivery_outcome(&self, id: &str, status: &str, detail: &str) -> Result<(), StoreError> {
        either!(self, s => s.delivery_outcome(id, status, detail).await)
    }

    pub async fn prune_changes(&self, keep_days: i64) -> Result<u64, StoreError> {
        either!(self, s => s.prune_changes(keep_days).await)
    }
}
