//! carehub — an integration hub for clinics.
//!
//! The map of the house (see `docs/architecture.md`):
//!
//! ```text
//! sources (mllp, file) ─▶ pipeline ─▶ store (message log, persons, provenance)
//!                          │  decode · parse (hl7) · map (mapping → model)
//!                          └─ group commit; the ACK waits for it
//! api ─▶ store · fhir_out (pure)      cli ─▶ app ─▶ everything
//! api ─▶ console (pages) ─▶ store
//! replay ─▶ store (reads) · pipeline (read) · mapping
//! reprocess ─▶ store (scans) · pipeline (read, writer) · mapping
//! ```
//!
//! - [`hl7`]: HL7 v2 parsing, escapes, charsets, ACKs, MLLP framing, batch files (pure).
//! - [`model`]: the canonical types (pure).
//! - [`fhir_out`]: stored persons and clinical records as FHIR R4 resources (pure); served by
//!   the API's `/fhir/r4` read routes.
//! - [`mapping`]: declarative YAML mappings, compiled and applied (pure).
//! - [`config`]: YAML configuration with every problem reported as `file:line: field: problem`.
//! - [`sources`]: connectors that receive records and hand them to the [`pipeline`].
//! - [`identity`]: probabilistic matching (Fellegi–Sunter) of incoming records to persons (pure).
//! - [`store`]: all SQL, SQLite and PostgreSQL behind one type.
//! - [`retention`]: raw message bodies pruned after their connector's retention (daily job, `carehub prune`).
//! - [`replay`]: shadow replay — a changed mapping over the stored messages, compared (reads only).
//! - [`reprocess`]: today's mapping files over chosen stored messages, through the ingest
//!   writer (rows rewritten in place; dry run counts).
//! - [`rules`]: notification rules — which change or moment owes which notification (pure);
//!   the store writes them into the outbox in the change's own transaction.
//! - [`delivery`]: the outbox relay (consent, segment, caps, quiet hours, templates), the
//!   channel workers and the scheduler of reminders, birthdays and recalls.
//! - [`queue`]: the queue between relay and workers — RabbitMQ or the embedded table.
//! - [`subscriptions`]: change notifications to clinic systems — signed POSTs of change events
//!   written in the change's transaction, delivered through the queue with retries.
//! - [`channels`]: channel adapters — file, e-mail (SMTP), SMS (Twilio, webhook), Telegram,
//!   Zalo, WhatsApp.
//! - [`linkage`], [`estimate`]: `carehub linkage-eval` (matching quality on a labelled CSV)
//!   and `carehub estimate-model` (m/u from the store's records, EM).
//! - [`net`]: server TLS (rustls, ring) and peer allow-lists for the listeners.
//! - [`audit`]: the audit log's rows and hash chain (pure); written by the API's access layer.
//! - [`metrics`]: Prometheus counters and histograms, and the gauges read from the store at scrape time.
//! - [`alerts`]: alerts to ops (`config/alerts.yaml`), evaluated from the store, sent through channels.
//! - [`console`]: the operator console at `/` — server-rendered pages under the API's roles.
//! - [`api`]: the HTTP API (roles on every route: `api/access.rs`). [`app`]: the composition root. [`cli`]: the `carehub` command.

pub mod alerts;
pub mod api;
pub mod app;
pub mod audit;
pub mod channels;
pub mod cli;
pub mod config;
pub mod console;
pub mod delivery;
pub mod estimate;
pub mod fhir_out;
pub mod fhirpath;
pub mod hl7;
pub mod identity;
pub mod linkage;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod net;
pub mod pipeline;
pub mod queue;
pub mod replay;
pub mod reprocess;
pub mod retention;
pub mod retry_after;
pub mod rules;
pub mod sources;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
