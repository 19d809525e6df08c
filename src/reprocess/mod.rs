//! Reprocess: today's mapping files applied to stored messages, through the normal writer.
//!
//! `carehub reprocess` and `POST /api/v1/messages/reprocess` choose messages by ids or by a
//! filter (connector, status, type, receive time), read the mapping files from disk *now* (an
//! operator who fixed a mapping reprocesses without a restart; a broken file is refused with
//! its `file:line: field: problem`), and hand each message to the ingest writer again
//! (`pipeline::Ingest::prepare_stored`): the same dedupe, identity matching and events as at
//! arrival — a booking already confirmed is not confirmed again — and its message-log row is
//! rewritten in place (status, error, mapping, person; `reprocessed_at`, `reprocess_count`).
//! A dry run maps and counts without writing. The log is walked one page at a time, oldest
//! first, so memory stays bounded whatever the filter; progress goes to the log (counts and
//! connector names only, never patient data).
//!
//! It is the writing counterpart of `replay/` (shadow replay), which reads the same way and
//! compares. Nothing here speaks HTTP or parses arguments: `api/` and `cli/` do.

mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Problem;
use crate::mapping::MappingSet;
use crate::pipeline::{ConnectorContext, Ingest, NotReread};
use crate::store::{
    Disposition, MessageScan, MessageStatus, NewRecord, Store, StoreError, StoredMessage, TypeFilter,
};

pub use report::{Line, Outcomes, Report, Skipped};

/// Rows read (and records handed to the writer) per page.
const PAGE_ROWS: i64 = 200;

/// Most ids one request may name (larger selections are filters).
pub const MAX_IDS: usize = 10_000;

/// How often a long run says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Which stored messages to read again. Ids and filter fields combine (AND); with no ids,
/// the statuses default to `error` and `unmapped`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub ids: Vec<i64>,
    pub connector: Option<String>,
    /// `error`, `unmapped`, `processed`.
    pub statuses: Vec<MessageStatus>,
    /// `ORU^R01` (that type) or `ORU` (every ORU event), or a FHIR resource type.
    pub message_type: Option<String>,
    /// Received at or after.
    pub received_from: Option<jiff::Timestamp>,
    /// Received before.
    pub received_to: Option<jiff::Timestamp>,
}

impl Selection {
    /// Checks what a caller asked for; the reason is said to them.
    pub fn check(&self) -> Result<(), String> {
        if self.ids.len() > MAX_IDS {
            return Err(format!(
                "at most {MAX_IDS} ids per request; choose more with a filter"
            ));
        }
        if let Some(bad) = self.statuses.iter().find(|s| {
            !matches!(
                s,
                MessageStatus::Error | MessageStatus::Unmapped | MessageStatus::Processed
            )
        }) {
            return Err(format!(
                "status {} cannot be reprocessed (error, unmapped or processed; a duplicate is reprocessed through its original)",
                bad.as_str()
            ));
        }
        if let (Some(from), Some(to)) = (self.received_from, self.received_to)
            && from >= to
        {
            return Err("received_from must be before received_to".into());
        }
        if self.message_type.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err("type is empty".into());
        }
        Ok(())
    }

    /// The statuses a scan keeps.
    fn statuses(&self) -> Vec<MessageStatus> {
        match (self.statuses.is_empty(), self.ids.is_empty()) {
            (false, _) => self.statuses.clone(),
            (true, true) => vec![MessageStatus::Error, MessageStatus::Unmapped],
            // Chosen by id: whatever their status (a duplicate stays one of its original).
            (true, false) => Vec::new(),
        }
    }

    fn type_filter(&self) -> Option<TypeFilter> {
        let t = self.message_type.as_deref()?.trim();
        let mut filter = TypeFilter {
            equal: vec![t.to_string()],
            ..TypeFilter::default()
        };
        if !t.contains('^') {
            filter.prefixes.push(format!("{t}^"));
        }
        Some(filter)
    }

    /// Whether a stored message's receive time is inside the range (the store's filter is to
    /// the second and a superset; this is exact). A time that does not read is kept.
    fn received_within(&self, m: &StoredMessage) -> bool {
        let Ok(at) = m.received_at.parse::<jiff::Timestamp>() else {
            return true;
        };
        self.received_from.is_none_or(|from| at >= from) && self.received_to.is_none_or(|to| at < to)
    }
}

/// Why a reprocess did not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    /// The mapping files on disk have problems: nothing was reprocessed.
    #[error("the mapping files have problems; nothing was reprocessed:\n{}", list(.0))]
    Mappings(Vec<Problem>),
    #[error("{0}")]
    Selection(String),
    #[error("a reprocess is already running; wait for it to finish")]
    Busy,
    /// The store failed; what was done before stays done (`done` says how much).
    #[error("the store failed after {done} messages were reprocessed: {source}")]
    Store { done: u64, source: StoreError },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// How a connector's messages are read.
struct Connector {
    ctx: ConnectorContext,
    /// It receives FHIR (pull or push), not HL7 v2.
    fhir: bool,
}

/// Reprocesses stored messages; one run at a time.
pub struct Reprocessor {
    ingest: Ingest,
    mappings_dir: PathBuf,
    connectors: HashMap<String, Connector>,
    /// For messages of connectors no longer configured: the hub's defaults.
    fallback: ConnectorContext,
    running: tokio::sync::Mutex<()>,
}

impl Reprocessor {
    /// `ingest` is the hub's writer handle; `connectors` each configured connector's context
    /// and whether it receives FHIR; mapping files are read from `mappings_dir` at each run.
    pub fn new(
        ingest: Ingest,
        mappings_dir: PathBuf,
        connectors: Vec<(ConnectorContext, bool)>,
        fallback: ConnectorContext,
    ) -> Reprocessor {
        Reprocessor {
            ingest,
            mappings_dir,
            connectors: connectors
                .into_iter()
                .map(|(ctx, fhir)| (ctx.name.clone(), Connector { ctx, fhir }))
                .collect(),
            fallback,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The mapping files as they are on disk now, checked as `carehub validate` checks them,
    /// and every connector's fixed mapping found among them.
    pub fn load_mappings(&self) -> Result<MappingSet, Vec<Problem>> {
        let set = MappingSet::load_dir(&self.mappings_dir)?;
        let mut problems = Vec::new();
        let mut fixed: Vec<(&String, &String)> = self
            .connectors
            .iter()
            .filter_map(|(name, c)| Some((name, c.ctx.mapping.as_ref()?)))
            .collect();
        fixed.sort();
        for (connector, mapping) in fixed {
            if set.get(mapping).is_none() {
                problems.push(Problem {
                    file: self.mappings_dir.display().to_string(),
                    line: None,
                    field: String::new(),
                    message: format!(
                        "connector {connector} uses mapping {mapping}, which no file here defines"
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(problems)
        }
    }

    /// Reads the chosen messages again with today's mappings; with `dry_run`, only counts
    /// what would become of them.
    pub async fn run(
        &self,
        store: &Store,
        selection: &Selection,
        dry_run: bool,
    ) -> Result<Report, ReprocessError> {
        selection.check().map_err(ReprocessError::Selection)?;
        let _turn = self.running.try_lock().map_err(|_| ReprocessError::Busy)?;
        let mappings = self.load_mappings().map_err(ReprocessError::Mappings)?;
        let ingest = self.ingest.with_mappings(Arc::new(mappings));
        let mut report = Report::new(dry_run);
        let started = Instant::now();
        let mut said = Instant::now();
        tracing::info!(dry_run, ids = selection.ids.len(), "reprocess started");
        let mut scan = MessageScan {
            after_id: 0,
            received_from: selection.received_from.map(|t| crate::store::time_text(t, false)),
            received_to: selection.received_to.map(|t| crate::store::time_text(t, true)),
            connector: selection.connector.clone(),
            types: selection.type_filter(),
            statuses: selection.statuses(),
            ids: Vec::new(),
            skip_duplicates: false,
            limit: PAGE_ROWS,
        };
        let mut ids = selection.ids.clone();
        ids.sort_unstable();
        ids.dedup();
        let mut id_pages = ids.chunks(PAGE_ROWS as usize);
        loop {
            if !ids.is_empty() {
                let Some(chunk) = id_pages.next() else { break };
                scan.ids = chunk.to_vec();
                scan.after_id = 0;
            }
            let page = store
                .scan_messages(&scan)
                .await
                .map_err(|source| ReprocessError::Store {
                    done: report.reprocessed,
                    source,
                })?;
            if ids.is_empty() {
                let Some(last) = page.last() else { break };
                scan.after_id = last.id;
            }
            self.page(&ingest, &page, selection, &mut report).await?;
            if said.elapsed() >= PROGRESS_EVERY {
                said = Instant::now();
                tracing::info!(
                    dry_run,
                    selected = report.selected,
                    reprocessed = report.reprocessed,
                    processed = report.outcomes.processed,
                    errors = report.outcomes.error,
                    unmapped = report.outcomes.unmapped,
                    "reprocess in progress"
                );
            }
        }
        report.finish();
        tracing::info!(
            dry_run,
            selected = report.selected,
            reprocessed = report.reprocessed,
            changed = report.changed,
            processed = report.outcomes.processed,
            errors = report.outcomes.error,
            unmapped = report.outcomes.unmapped,
            duplicates = report.outcomes.duplicate,
            skipped = report.skipped.body_pruned + report.skipped.fhir_document,
            ms = started.elapsed().as_millis() as u64,
            "reprocess finished"
        );
        Ok(report)
    }

    fn connector(&self, name: &str) -> Option<&Connector> {
        self.connectors.get(name)
    }

    /// One page: each message prepared (mapped), then counted (dry run) or written.
    async fn page(
        &self,
        ingest: &Ingest,
        page: &[StoredMessage],
        selection: &Selection,
        report: &mut Report,
    ) -> Result<(), ReprocessError> {
        let mut records: Vec<(&ConnectorContext, NewRecord)> = Vec::new();
        let mut chosen: Vec<&StoredMessage> = Vec::new();
        for m in page.iter().filter(|m| selection.received_within(m)) {
            report.selected += 1;
            let (ctx, fhir) = match self.connector(&m.connector) {
                Some(c) => (&c.ctx, c.fhir),
                None => (&self.fallback, m.raw.trim_ascii_start().starts_with(b"{")),
            };
            match ingest.prepare_stored(ctx, m, fhir) {
                Err(NotReread::Pruned) => report.skipped.body_pruned += 1,
                Err(NotReread::FhirDocument) => report.skipped.fhir_document += 1,
                Ok(record) if report.dry_run => {
                    let after = match &record.disposition {
                        Disposition::Apply { .. } | Disposition::Delete { .. } => MessageStatus::Processed,
                        Disposition::Unmapped { .. } => MessageStatus::Unmapped,
                        Disposition::Error { .. } => MessageStatus::Error,
                    };
                    report.count(m, after);
                }
                Ok(record) => {
                    records.push((ctx, record));
                    chosen.push(m);
                }
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        for (m, outcome) in chosen.into_iter().zip(ingest.resubmit(records).await) {
            match outcome {
                Ok(applied) => report.count(m, applied.status),
                Err(source) => {
                    tracing::error!(message_id = m.id, error = %source, "reprocess stopped: a message could not be written");
                    return Err(ReprocessError::Store {
                        done: report.reprocessed,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}
