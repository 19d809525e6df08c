//! The hub's Prometheus metrics: what each part of the hub counts as it works, and the
//! gauges read from the store when `/metrics` is scraped.
//!
//! One [`Metrics`] per running hub (it travels with the [`crate::store::Store`] handle, so
//! that the writer, the sources and the channel workers reach it without new plumbing; tests
//! that run several hubs in one process each have their own). Counters and histograms are
//! kept in memory by `prometheus-client`; gauges whose truth lives in the store (outbox,
//! queue depth, review queue, connector state, cursor lag) are read at scrape time
//! ([`StoreGauges`]), so that two replicas report the same values.
//!
//! Labels never carry patient data: connector, channel and resource-type names from the
//! configuration, message types checked against the HL7/FHIR shape ([`message_type_label`]),
//! and outcomes from closed sets. This room does no I/O.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::render`] writes (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Most distinct message types counted per hub; later ones are counted as `other`.
const MAX_MESSAGE_TYPES: usize = 200;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    connector: String,
    message_type: String,
    /// `processed`, `error`, `unmapped`, `duplicate`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceivedLabels {
    connector: String,
    message_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    connector: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    channel: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    connector: String,
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CursorLabels {
    connector: String,
    resource_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabel {
    alert: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 0.5 ms to ~16 s, doubling: ACKs and provider calls.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// What one stored record was, as the writer reports it.
#[derive(Debug, Clone, Copy)]
pub struct StoredRecord<'a> {
    pub connector: &'a str,
    pub message_type: Option<&'a str>,
    /// `processed`, `error`, `unmapped`, `duplicate` (the message-log status).
    pub outcome: &'static str,
    /// How identity resolution placed it (`identifier`, `match`, `review`, `new`), when it did.
    pub identity: Option<&'static str>,
}

/// The hub's counters and histograms (see the module doc).
pub struct Metrics {
    registry: Registry,
    received: Family<ReceivedLabels, Counter>,
    messages: Family<MessageLabels, Counter>,
    store_failures: Family<ConnectorLabel, Counter>,
    ack_latency: HistogramFamily<ConnectorLabel>,
    batch_records: Histogram,
    commit_seconds: Histogram,
    identity: Family<OutcomeLabel, Counter>,
    pull_runs: Family<RunLabels, Counter>,
    pull_pages: Family<ConnectorLabel, Counter>,
    pull_resources: Family<ConnectorLabel, Counter>,
    pull_errors: Family<ConnectorLabel, Counter>,
    sends: Family<SendLabels, Counter>,
    provider_latency: HistogramFamily<ChannelLabel>,
    alert_messages: Family<SendLabels, Counter>,
    /// Message types seen so far (bounded, see [`MAX_MESSAGE_TYPES`]).
    types: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("carehub"),
            received: Family::default(),
            messages: Family::default(),
            store_failures: Family::default(),
            ack_latency: Family::new_with_constructor(latency_histogram),
            // 1 to 4096 records, doubling.
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 0.1 ms to ~3.3 s, doubling.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            identity: Family::default(),
            pull_runs: Family::default(),
            pull_pages: Family::default(),
            pull_resources: Family::default(),
            pull_errors: Family::default(),
            sends: Family::default(),
            provider_latency: Family::new_with_constructor(latency_histogram),
            alert_messages: Family::default(),
            types: Default::default(),
        };
        m.registered()
    }

    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "messages_received",
            "Messages stored in the message log, by connector and message type",
            self.received.clone(),
        );
        r.register(
            "messages",
            "Messages stored, by connector, message type and outcome (processed, error, unmapped, duplicate)",
            self.messages.clone(),
        );
        r.register(
            "ingest_store_failures",
            "Messages the store could not take (the sender was told to send again)",
            self.store_failures.clone(),
        );
        r.register(
            "mllp_ack_latency_seconds",
            "From a whole MLLP frame received to its ACK written back, by connector",
            self.ack_latency.clone(),
        );
        r.register(
            "writer_batch_records",
            "Records committed together by the ingest writer (one transaction)",
            self.batch_records.clone(),
        );
        r.register(
            "writer_commit_seconds",
            "Time the ingest writer took to apply and commit one batch",
            self.commit_seconds.clone(),
        );
        r.register(
            "identity_outcomes",
            "How records found their person: identifier, match, review or new",
            self.identity.clone(),
        );
        r.register(
            "fhir_pull_runs",
            "FHIR pull runs, by connector and outcome (ok, failed)",
            self.pull_runs.clone(),
        );
        r.register(
            "fhir_pull_pages",
            "FHIR search or history pages read, by connector",
            self.pull_pages.clone(),
        );
        r.register(
            "fhir_pull_resources",
            "FHIR resources read by pulls, by connector",
            self.pull_resources.clone(),
        );
        r.register(
            "fhir_pull_errors",
            "Resources a pull could not map or store, and failed runs, by connector",
            self.pull_errors.clone(),
        );
        r.register(
            "sends",
            "Provider calls by channel and outcome (sent, delivered, deferred, retry, failed, rejected, unknown)",
            self.sends.clone(),
        );
        r.register(
            "provider_latency_seconds",
            "Time a channel's provider took to answer a send, by channel",
            self.provider_latency.clone(),
        );
        r.register(
            "alert_messages",
            "Alert messages to ops, by channel and outcome (sent, failed)",
            self.alert_messages.clone(),
        );
        self
    }

    /// A committed batch: its size, how long the commit took, and what each record became.
    pub fn batch_committed<'a>(
        &self,
        elapsed: std::time::Duration,
        records: impl Iterator<Item = StoredRecord<'a>>,
    ) {
        let mut n = 0u64;
        // Records of a batch mostly share connector, type and outcome: count runs of equals.
        let mut run: Option<(StoredRecord<'a>, u64)> = None;
        for r in records {
            n += 1;
            if let Some(how) = r.identity {
                self.identity.get_or_create(&OutcomeLabel { outcome: how }).inc();
            }
            match &mut run {
                Some((last, count))
                    if last.connector == r.connector
                        && last.message_type == r.message_type
                        && last.outcome == r.outcome =>
                {
                    *count += 1
                }
                _ => {
                    if let Some((last, count)) = run.take() {
                        self.count_messages(last, count);
                    }
                    run = Some((r, 1));
                }
            }
        }
        if let Some((last, count)) = run {
            self.count_messages(last, count);
        }
        self.batch_records.observe(n as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    fn count_messages(&self, r: StoredRecord<'_>, count: u64) {
        let message_type = self.type_label(r.message_type);
        self.received
            .get_or_create(&ReceivedLabels {
                connector: r.connector.to_string(),
                message_type: message_type.clone(),
            })
            .inc_by(count);
        self.messages
            .get_or_create(&MessageLabels {
                connector: r.connector.to_string(),
                message_type,
                outcome: r.outcome,
            })
            .inc_by(count);
    }

    /// The label for a message type: itself when it has the shape of one and the hub has not
    /// seen too many, else `other`; `none` when the message had none.
    fn type_label(&self, t: Option<&str>) -> String {
        let Some(t) = t else { return "none".into() };
        let t = message_type_label(t);
        if t == "other" {
            return t.to_string();
        }
        if self.types.read().is_ok_and(|s| s.contains(t)) {
            return t.to_string();
        }
        let Ok(mut seen) = self.types.write() else {
            return "other".into();
        };
        if seen.len() >= MAX_MESSAGE_TYPES && !seen.contains(t) {
            return "other".into();
        }
        seen.insert(t.to_string());
        t.to_string()
    }

    /// Records the store could not take, by connector.
    pub fn store_failed(&self, connector: &str, records: u64) {
        self.store_failures
            .get_or_create(&ConnectorLabel {
                connector: connector.to_string(),
            })
            .inc_by(records);
    }

    /// An MLLP frame answered `elapsed` after it was received.
    pub fn ack_sent(&self, connector: &str, elapsed: std::time::Duration) {
        self.ack_latency
            .get_or_create(&ConnectorLabel {
                connector: connector.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The end of a FHIR pull run with its totals.
    pub fn pull_run(&self, connector: &str, outcome: &str, pages: u64, resources: u64, errors: u64) {
        let c = ConnectorLabel {
            connector: connector.to_string(),
        };
        self.pull_runs
            .get_or_create(&RunLabels {
                connector: connector.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.pull_pages.get_or_create(&c).inc_by(pages);
        self.pull_resources.get_or_create(&c).inc_by(resources);
        self.pull_errors
            .get_or_create(&c)
            .inc_by(errors + u64::from(outcome == "failed"));
    }

    /// A provider call of a channel and what came of it.
    pub fn send(&self, channel: &str, outcome: &str, elapsed: Option<std::time::Duration>) {
        self.sends
            .get_or_create(&SendLabels {
                channel: channel.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        if let Some(elapsed) = elapsed {
            self.provider_latency
                .get_or_create(&ChannelLabel {
                    channel: channel.to_string(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// An alert message to ops through a channel.
    pub fn alert_message(&self, channel: &str, sent: bool) {
        self.alert_messages
            .get_or_create(&SendLabels {
                channel: channel.to_string(),
                outcome: if sent { "sent" } else { "failed" }.to_string(),
            })
            .inc();
    }

    /// The exposition: every counter and histogram, then the gauges read from the store.
    pub fn render(&self, gauges: &StoreGauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &gauges.registry());
        out
    }
}

/// `message_type` when it looks like an HL7 v2 type (`ADT^A04`, `ORU^R01^ORU_R01`) or a FHIR
/// resource type (`Patient`); `other` for anything else a sender may have written there.
pub fn message_type_label(t: &str) -> &str {
    let ok = !t.is_empty()
        && t.len() <= 32
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '^' || c == '_')
        && t.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if ok { t } else { "other" }
}

/// The gauges whose truth is in the store, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// Connectors: name, kind, state, seconds since the last message (when there was one).
    pub connectors: Vec<(String, String, String, Option<f64>)>,
    /// Notifications by status.
    pub outbox: Vec<(String, i64)>,
    /// Seconds the oldest due, unsent notification has waited.
    pub outbox_oldest_pending_secs: f64,
    /// Seconds the oldest notification handed to the queue and not yet sent has waited.
    pub queued_oldest_secs: f64,
    /// Messages waiting in the queue, by channel (when the queue answered).
    pub queue_depth: Vec<(String, u64)>,
    /// Open review items.
    pub review_open: i64,
    /// FHIR pull cursors: connector, resource type, seconds behind now.
    pub cursor_lag: Vec<(String, String, f64)>,
    /// Alerts firing now, by name.
    pub alerts_firing: Vec<(String, i64)>,
}

impl StoreGauges {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("carehub");
        let state: Family<StateLabels, Gauge> = Family::default();
        let age: Family<ConnectorLabel, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        for (name, kind, s, last) in &self.connectors {
            state
                .get_or_create(&StateLabels {
                    connector: name.clone(),
                    kind: kind.clone(),
                    state: s.clone(),
                })
                .set(1);
            if let Some(secs) = last {
                age.get_or_create(&ConnectorLabel {
                    connector: name.clone(),
                })
                .set(*secs);
            }
        }
        r.register(
            "connector_state",
            "1 for each connector's state as the store has it (running, degraded, failed, stopped)",
            state,
        );
        r.register(
            "connector_last_message_age_seconds",
            "Seconds since a connector's last message",
            age,
        );
        let outbox: Family<StatusLabel, Gauge> = Family::default();
        for (status, n) in &self.outbox {
            outbox
                .get_or_create(&StatusLabel {
                    status: status.clone(),
                })
                .set(*n);
        }
        r.register(
            "outbox_notifications",
            "Notifications in the outbox, by status",
            outbox,
        );
        let pending: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        pending.set(self.outbox_oldest_pending_secs);
        r.register(
            "outbox_oldest_pending_age_seconds",
            "Seconds the oldest due notification not yet handed to the queue has waited (0: none)",
            pending,
        );
        let queued: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        queued.set(self.queued_oldest_secs);
        r.register(
            "queue_oldest_age_seconds",
            "Seconds the oldest notification in the queue, not yet sent, has waited (0: none)",
            queued,
        );
        let depth: Family<ChannelLabel, Gauge> = Family::default();
        for (channel, n) in &self.queue_depth {
            depth
                .get_or_create(&ChannelLabel {
                    channel: channel.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        r.register("queue_depth", "Messages waiting in the queue, by channel", depth);
        let review: Gauge = Gauge::default();
        review.set(self.review_open);
        r.register(
            "review_queue_open",
            "Possible duplicates waiting for a person's decision",
            review,
        );
        let lag: Family<CursorLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
        for (connector, t, secs) in &self.cursor_lag {
            lag.get_or_create(&CursorLabels {
                connector: connector.clone(),
                resource_type: t.clone(),
            })
            .set(*secs);
        }
        r.register(
            "fhir_cursor_lag_seconds",
            "How far a FHIR pull's cursor (_lastUpdated) is behind now, by connector and resource type",
            lag,
        );
        let firing: Family<AlertLabel, Gauge> = Family::default();
        for (alert, n) in &self.alerts_firing {
            firing.get_or_create(&AlertLabel { alert: alert.clone() }).set(*n);
        }
        r.register("alerts_firing", "Alerts firing now, by alert name", firing);
        r
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(
        connector: &'static str,
        t: Option<&'static str>,
        outcome: &'static str,
    ) -> StoredRecord<'static> {
        StoredRecord {
            connector,
            message_type: t,
            outcome,
            identity: None,
        }
    }

    #[test]
    fn a_batch_counts_each_record_once_by_connector_type_and_outcome() {
        let m = Metrics::new();
        m.batch_committed(
            std::time::Duration::from_millis(2),
            [
                stored("lab", Some("ORU^R01"), "processed"),
                stored("lab", Some("ORU^R01"), "processed"),
                stored("lab", Some("ORU^R01"), "error"),
                stored("emr", Some("ADT^A04"), "processed"),
            ]
            .into_iter(),
        );
        let text = m.render(&StoreGauges::default());
        assert!(
            text.contains(
                r#"carehub_messages_total{connector="lab",message_type="ORU^R01",outcome="processed"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"carehub_messages_received_total{connector="lab",message_type="ORU^R01"} 3"#)
        );
        assert!(
            text.contains(r#"carehub_messages_received_total{connector="emr",message_type="ADT^A04"} 1"#)
        );
        assert!(text.contains("carehub_writer_batch_records_count 1"));
        assert!(text.contains("carehub_writer_batch_records_sum 4.0"), "{text}");
    }

    #[test]
    fn a_message_type_that_is_not_one_is_counted_as_other() {
        assert_eq!(message_type_label("ADT^A04^ADT_A01"), "ADT^A04^ADT_A01");
        assert_eq!(message_type_label("Patient"), "Patient");
        assert_eq!(message_type_label("Nguyen Van A"), "other");
        assert_eq!(message_type_label("adt^a04\"}"), "other");
        assert_eq!(message_type_label(&"A".repeat(40)), "other");
        let m = Metrics::new();
        for i in 0..(MAX_MESSAGE_TYPES + 5) {
            let t = format!("ZZ{i}");
            let label = m.type_label(Some(&t));
            assert_eq!(label == "other", i >= MAX_MESSAGE_TYPES, "{t}");
        }
    }
}
