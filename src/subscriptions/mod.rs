//! Change notifications to clinic systems: subscriptions (configured, or made through
//! `/api/v1/subscriptions`) that are POSTed a signed notification when a patient is created,
//! updated or merged or a clinical record changes — docs/subscriptions.md.
//!
//! The change event is written by the store in the change's own transaction (the outbox:
//! `store/batch_changes.rs`, merges in `store/sql_identity.rs`). The relay (`relay.rs`) fans
//! events out into one delivery per subscription and hands deliveries to the notification
//! queue (embedded or RabbitMQ, its retries and dead letters) on the channel
//! [`QUEUE_CHANNEL`]; the worker (`worker.rs`) POSTs each, signed (`payload.rs`), and records
//! the outcome before it settles the queue message. At least once: a receiver de-duplicates
//! on the event id header. Nothing here reads or sends patient data beyond ids.

mod config;
pub mod payload;
mod relay;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    ChangeEvent, MIN_SECRET_CHARS, Payload, RecordKind, SubscriptionConfig, URL_PATTERN, check, filter,
    name_problem, url_problem,
};
pub use worker::handle;

use crate::config::Secret;
use crate::queue::{Queue, QueueConfig};
use crate::store::Store;

/// The queue channel subscription deliveries travel on (`<prefix>.send._subscriptions` on
/// RabbitMQ). Channel names of `channels:` cannot start with `_`… by convention: do not.
pub const QUEUE_CHANNEL: &str = "_subscriptions";

/// What the relay and the worker share.
pub struct Hooks {
    pub store: Store,
    pub queue: Queue,
    pub queue_config: QueueConfig,
    /// Secrets of the configured subscriptions, by name (API ones are in the store).
    pub secrets: HashMap<String, Secret>,
    pub http: reqwest::Client,
    /// Per POST.
    pub timeout: Duration,
    /// POSTs in flight at once.
    pub concurrency: usize,
}

/// Starts the relay and the worker.
pub fn spawn(
    hooks: Arc<Hooks>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    tasks.spawn(relay::run(hooks.clone(), shutdown.clone()));
    tasks.spawn(worker::run(hooks, shutdown.clone()));
}

/// Stores the configured subscriptions, opens the queue for their deliveries and starts the
/// relay and the worker (always: subscriptions made through the API need them too).
pub async fn start(
    configured: &[SubscriptionConfig],
    queue_config: &QueueConfig,
    store: &Store,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(), String> {
    let rows: Vec<_> = configured.iter().map(SubscriptionConfig::row).collect();
    store
        .sync_configured_subscriptions(&rows)
        .await
        .map_err(|e| format!("storing the configured subscriptions: {e}"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("carehub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let queue = Queue::open(queue_config, store, &[QUEUE_CHANNEL.to_string()])
        .await
        .map_err(|e| format!("opening the queue for deliveries: {e}"))?;
    let hooks = Hooks {
        store: store.clone(),
        queue,
        queue_config: queue_config.clone(),
        secrets: configured
            .iter()
            .map(|s| (s.name.clone(), s.secret.clone()))
            .collect(),
        http,
        timeout: Duration::from_secs(10),
        concurrency: 8,
    };
    spawn(Arc::new(hooks), shutdown, tasks);
    Ok(())
}
