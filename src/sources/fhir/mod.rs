//! `type: fhir`: a FHIR R4 REST server pulled on a cron schedule, incrementally.
//!
//! `config.rs` holds the settings, `schedule.rs` the cron rules, `client.rs` the HTTP side
//! (authentication, retries, backoff), `pull.rs` a run (search, paging, cursors committed with
//! their page) and the schedule loop. Pulled resources go through the same pipeline as every
//! other record (`Ingest::prepare_page`, `Ingest::store_page`).

mod client;
mod config;
mod pull;
pub mod schedule;

pub use client::{FhirClient, PullError};
pub use config::{FhirAuth, FhirConfig, ResourceQuery};
pub use pull::{Puller, RunSummary, serve};
