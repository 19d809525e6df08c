//! Delivering notifications: the outbox relay (`relay.rs`), the channel workers
//! (`worker.rs`), the scheduler of time-based rules (`schedule.rs`), the checks a send must
//! pass (`checks.rs`) and the templates (`templates.rs`).
//!
//! The rules (`crate::rules`) decide *that* a notification is owed and write it into the
//! outbox with the change that caused it; this module decides *whether, when, how and in
//! which words* it goes out, and records what each provider said.

mod checks;
mod config;
mod ledger;
pub mod relay;
pub mod schedule;
mod templates;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use checks::{consent, quiet_until};
pub use config::{ClinicInfo, NotifyConfig, QuietHours};
pub use templates::{Rendered, Templates, normalize_language};

use crate::channels::Channel;
use crate::queue::{Queue, QueueConfig};
use crate::rules::RuleSet;
use crate::store::Store;

/// What the relay, the workers and the scheduler share.
pub struct Services {
    pub store: Store,
    pub queue: Queue,
    pub rules: Arc<RuleSet>,
    pub templates: Arc<Templates>,
    /// Enabled channels by name.
    pub channels: BTreeMap<String, Arc<Channel>>,
    pub config: NotifyConfig,
    pub queue_config: QueueConfig,
}

/// Starts the relay, one worker per channel and the scheduler.
pub fn spawn(
    services: Arc<Services>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    tasks.spawn(relay::run(services.clone(), shutdown.clone()));
    tasks.spawn(schedule::run(services.clone(), shutdown.clone()));
    for channel in services.channels.values() {
        tasks.spawn(worker::run(services.clone(), channel.clone(), shutdown.clone()));
    }
}
