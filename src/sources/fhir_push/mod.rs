//! `type: fhir_push`: systems POST FHIR R4 resources or Bundles (batch, transaction,
//! collection…) to the hub's API, at the connector's `path` (`/fhir/r4`).
//!
//! The endpoint lives on the API server (`crate::api`); this room holds its settings. Each
//! resource goes the way every record goes: the pipeline stores it in the message log, maps it
//! with the mapping for its resource type (references between entries of one Bundle resolved),
//! and the writer commits it before the answer is sent.

mod config;

pub use config::FhirPushConfig;
