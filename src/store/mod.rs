//! The profile store: persons, identifiers, source records with provenance, the message log,
//! connector state. All SQL of the hub lives under this folder.
//!
//! [`Store`] is the one door. It speaks sqlx to SQLite (the embedded default, one file in WAL
//! mode) or PostgreSQL (production, several replicas), with the same queries (`sql.rs`), the
//! same batch planning (`batch.rs`) and the same tests.
//! Writes from every source arrive in groups through [`Store::apply_batch`], one transaction per
//! group, so that an MLLP ACK can wait for a commit without each message paying for its own.

mod batch;
mod cipher;
mod postgres;
mod postgres_rekey;
mod postgres_stats;
mod sql;
mod sql_access;
mod sql_clinical;
mod sql_console;
mod sql_identity;
mod sql_messages;
mod sql_notify;
mod sql_ops;
mod sql_pull;
mod sql_queue;
mod sql_retention;
mod sql_schedule;
mod sql_subscriptions;
mod sqlite;
mod sqlite_audit;
mod sqlite_cipher;
mod sqlite_keys;
mod sqlite_outbox;
mod sqlite_pages;
mod sqlite_writer;
mod subscriptions;
mod types;
mod write_changes;

pub use cipher::MIN_KEY_CHARS;
pub use sql_access::{AuditFilter, TokenRecord};
pub use sql_console::{FailedSend, RATE_SCAN_ROWS, SessionRecord};
pub use sql_ops::{AlertRow, OpsCounts};
pub use sql_retention::{PRUNE_PAGE_ROWS, PruneCount, PrunePlan, PruneReport};
pub use sql_subscriptions::{ChangeFilter, ChangeRow, DeliveryCounts, DeliveryToSend, SubscriptionRow};
pub use sqlite_cipher::megabytes;
pub use types::*;

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::config::{StoreConfig, redact_url};
use crate::identity::Matcher;
use crate::model::ProfilePatch;
use crate::rules::RuleSet;

/// Store failures. None of them carries patient data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot create the folder for the store: {0}")]
    Folder(std::io::Error),
    #[error("migrating the store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unknown store URL {0} (use sqlite://PATH or postgres://USER@HOST/DATABASE)")]
    Unsupported(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store's writer stopped")]
    WriterGone,
    #[error("syncing the write-ahead log to disk failed: {0}")]
    Sync(std::io::Error),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    /// A failure shared by a group of writes (its commit or its sync).
    #[error("{0}")]
    Failed(String),
    #[error("the store answered nothing for a record")]
    Empty,
    #[error("no store at {0} (start carehub once, or run carehub migrate)")]
    Missing(String),
    /// The configured key and the store do not fit (docs/security.md#encryption-at-rest-key-rotation-backup-and-restore).
    #[error("{0}")]
    KeyMismatch(String),
    /// A value encrypted by carehub cannot be opened.
    #[error("{0}")]
    Cipher(String),
}

/// The database file of an SQLite store URL (`None` for PostgreSQL).
pub fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite:").map(|p| p.trim_start_matches("//"))
}

/// The schema version this carehub migrates an SQLite store to.
pub fn sqlite_schema_version() -> i64 {
    sqlx::migrate!("migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// `carehub backup` (SQLite): a consistent snapshot of the store into the new file `to`,
/// encrypted with the store's key when one is configured; safe while a hub writes. Blocking.
/// Answers the snapshot's size in bytes.
pub fn backup_sqlite(config: &StoreConfig, to: &std::path::Path) -> Result<u64, StoreError> {
    let path = sqlite_path(&config.url).ok_or_else(|| StoreError::Unsupported(redact_url(&config.url)))?;
    if !std::path::Path::new(path).exists() {
        return Err(StoreError::Missing(path.to_string()));
    }
    let key = cipher::StoreKey::from_config(config.encryption_key.as_ref());
    sqlite_cipher::backup(path, key.as_deref(), to)
}

/// `carehub restore` (SQLite): the backup `from` (made with the configured key) copied to
/// where the store URL points, which must hold no store yet, then checked. Blocking.
/// Answers the restored store's message count and schema version.
pub fn restore_sqlite(config: &StoreConfig, from: &std::path::Path) -> Result<(i64, i64), StoreError> {
    let path = sqlite_path(&config.url).ok_or_else(|| StoreError::Unsupported(redact_url(&config.url)))?;
    let key = cipher::StoreKey::from_config(config.encryption_key.as_ref());
    sqlite_cipher::restore(from, path, key.as_deref())
}

/// `carehub rekey`: the store encrypted under `new` (from the configured key, or from plain).
/// SQLite: the file rewritten (the hub must be stopped; refused while it has the file open);
/// answers the new file's size. PostgreSQL: the sealed columns rewritten in batches; answers
/// the rows rewritten (message bodies plus notifications).
pub async fn rekey(config: &StoreConfig, new: &crate::config::Secret) -> Result<u64, StoreError> {
    let old = cipher::StoreKey::from_config(config.encryption_key.as_ref());
    let new = cipher::StoreKey::new(new);
    if let Some(path) = sqlite_path(&config.url) {
        if !std::path::Path::new(path).exists() {
            return Err(StoreError::Missing(path.to_string()));
        }
        let path = path.to_string();
        return tokio::task::spawn_blocking(move || sqlite_cipher::rekey(&path, old.as_deref(), &new))
            .await
            .map_err(|_| StoreError::WriterGone)?;
    }
    let store = Store::open_existing(config).await?;
    match &store.backend {
        Backend::Postgres(pg) => {
            let (messages, notifications) = pg.rekey(&new).await?;
            Ok(messages + notifications)
        }
        Backend::Sqlite(_) => Err(StoreError::Unsupported(redact_url(&config.url))),
    }
}

/// The profile store.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// How records without a known identifier find their person.
    matcher: Arc<Matcher>,
    /// Which changes make notifications (written in the change's own transaction).
    rules: Arc<RuleSet>,
    /// The hub's metrics: every holder of the store reaches them (`crate::metrics`).
    metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// See [`Store::blocking_writer`].
#[derive(Clone, Debug)]
pub struct BlockingWriter(sqlite::SqliteStore, Arc<Matcher>, Arc<RuleSet>);

impl BlockingWriter {
    /// [`Store::apply_batch`], on the calling thread (never call it from async code), except
    /// that on return the batch is committed and visible but not yet certain to survive a
    /// power loss: call [`Self::make_durable`] before telling anyone it is stored. Splitting
    /// the two lets the next batch be written while the disk syncs this one.
    pub fn apply_batch(&self, records: &[NewRecord]) -> Result<Vec<Applied>, StoreError> {
        self.0.apply_batch_blocking(records, &self.1, &self.2)
    }

    /// Makes every batch committed so far survive a power loss (one sync covers them all);
    /// nothing to do with `sqlite_synchronous: normal`.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        self.0.make_durable()
    }
}

/// Calls the same method on whichever backend the store has.
macro_rules! on_backend {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $call,
            Backend::Postgres($s) => $call,
        }
    };
}

// After the macro: it uses it.
mod notify;

impl Store {
    /// Opens the store named by `config.url` and brings its schema up to date. A database that
    /// is busy or not reachable yet gets a few tries with backoff; a configuration error (a
    /// folder that cannot be made, an unknown URL) fails at once.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let store = Self::connect(config, true).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens an existing store for reading (`carehub status`): no schema change, and no SQLite
    /// file is created where there was none.
    pub async fn open_existing(config: &StoreConfig) -> Result<Store, StoreError> {
        if let Some(path) = config.url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if !std::path::Path::new(path).exists() {
                return Err(StoreError::Missing(path.to_string()));
            }
        }
        Self::connect(config, false).await
    }

    async fn connect(config: &StoreConfig, create: bool) -> Result<Store, StoreError> {
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        let url = config.url.as_str();
        let open = || async {
            if let Some(path) = url.strip_prefix("sqlite:") {
                let path = path.trim_start_matches("//");
                let s = sqlite::SqliteStore::open(
                    path,
                    config.max_connections,
                    timeout,
                    config.sqlite_synchronous,
                    create,
                    cipher::StoreKey::from_config(config.encryption_key.as_ref()),
                );
                Ok(Backend::Sqlite(s.await?))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Ok(Backend::Postgres(
                    postgres::PgStore::open(
                        url,
                        config.max_connections,
                        timeout,
                        cipher::StoreKey::from_config(config.encryption_key.as_ref()),
                    )
                    .await?,
                ))
            } else {
                Err(StoreError::Unsupported(redact_url(url)))
            }
        };
        let backend = open
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(4),
            )
            .when(|e| matches!(e, StoreError::Sql(_)))
            .notify(|e, wait| tracing::warn!(error = %e, ?wait, "cannot open the store yet; retrying"))
            .await
            .map_err(|e| match e {
                StoreError::Sql(source) => StoreError::Open {
                    url: redact_url(url),
                    source,
                },
                other => other,
            })?;
        Ok(Store {
            backend,
            matcher: Arc::new(Matcher::default()),
            rules: Arc::new(RuleSet::default()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        })
    }

    /// The hub's metrics (one set per opened store).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The store with this matching configuration (the default: matching on, default model).
    pub fn with_matcher(mut self, matcher: Matcher) -> Store {
        self.matcher = Arc::new(matcher);
        self
    }

    /// The store with these notification rules (the default: none).
    pub fn with_rules(mut self, rules: RuleSet) -> Store {
        self.rules = Arc::new(rules);
        self
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The backend's name, for logs: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the store's connections and waits until they are closed: a command that exits
    /// right after must not leave a connection closing (SQLCipher's, with libcrypto) while the
    /// process tears libcrypto down.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_backend!(self, s => s.migrate().await)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, s => s.ping().await)
    }

    /// Writes a group of inbound records in one transaction: each one's message-log row and,
    /// for mapped records, its effect on the person. Either all of them commit or none.
    pub async fn apply_batch(&self, records: &[NewRecord]) -> Result<Vec<Applied>, StoreError> {
        on_backend!(self, s => s.apply_batch(records, &self.matcher, &self.rules).await)
    }

    /// What ingest would do with this patch — link it to a person (by identifier or by
    /// score), send it to review, or make a new person — with the score breakdown, found by
    /// the ingest path's own look-ups and plan. Nothing is written.
    pub async fn match_patch(&self, patch: &ProfilePatch) -> Result<MatchResult, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let (s, patch, matcher) = (s.clone(), patch.clone(), self.matcher.clone());
                tokio::task::spawn_blocking(move || s.match_blocking(&patch, &matcher))
                    .await
                    .map_err(|_| StoreError::WriterGone)?
            }
            Backend::Postgres(s) => s.match_patch(patch, &self.matcher).await,
        }
    }

    /// The same, on the calling thread (SQLite only; PostgreSQL answers `None`): for callers
    /// that time each record without a thread hop.
    pub fn match_patch_blocking(&self, patch: &ProfilePatch) -> Option<Result<MatchResult, StoreError>> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.match_blocking(patch, &self.matcher)),
            Backend::Postgres(_) => None,
        }
    }

    /// The store's synchronous ingest writer, when its backend has one (SQLite): the pipeline
    /// drives it from a thread of its own, with no await between a batch's statements.
    pub fn blocking_writer(&self) -> Option<BlockingWriter> {
        match &self.backend {
            Backend::Sqlite(s) => Some(BlockingWriter(
                s.clone(),
                self.matcher.clone(),
                self.rules.clone(),
            )),
            Backend::Postgres(_) => None,
        }
    }

    /// Persons holding an identifier with this value (and system, when given).
    pub async fn find_persons(
        &self,
        value: &str,
        system: Option<&str>,
    ) -> Result<Vec<PersonView>, StoreError> {
        on_backend!(self, s => s.find_persons(value, system, &self.matcher.survivorship).await)
    }

    pub async fn person(&self, id: &str) -> Result<Option<PersonView>, StoreError> {
        on_backend!(self, s => s.person(id, &self.matcher.survivorship).await)
    }

    pub async fn person_count(&self) -> Result<i64, StoreError> {
        on_backend!(self, s => s.person_count().await)
    }

    pub async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>, StoreError> {
        on_backend!(self, s => s.messages(filter).await)
    }

    /// The persons a patient identifier names, with the persons merged into them (see
    /// [`MessageFilter::person_ids`]).
    pub async fn persons_by_identifier(
        &self,
        value: &str,
        system: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        on_backend!(self, s => s.persons_by_identifier(value, system).await)
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        on_backend!(self, s => s.message(id).await)
    }

    /// One page of stored messages with their bytes, oldest first (`carehub replay` walks the
    /// log with it, page after page, passing the last id it read as `after_id`). Reads only.
    pub async fn scan_messages(&self, scan: &MessageScan) -> Result<Vec<StoredMessage>, StoreError> {
        on_backend!(self, s => s.scan_messages(scan).await)
    }

    /// Empties the raw bodies of logged messages past their retention (metadata and content
    /// hash stay; `body_pruned_at` says when), in bounded batches; a dry run only counts.
    pub async fn prune_bodies(&self, plan: &PrunePlan) -> Result<PruneReport, StoreError> {
        on_backend!(self, s => s.prune_bodies(plan).await)
    }

    /// Review items with this status (`open`, `linked`, `rejected`), newest first.
    pub async fn reviews(&self, status: &str, limit: i64) -> Result<Vec<ReviewItem>, StoreError> {
        on_backend!(self, s => s.reviews(status, limit).await)
    }

    /// How many review items were ever opened.
    pub async fn review_count(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.review_count().await)
    }

    /// Decides an open review item: `link` merges its new person into the candidate.
    pub async fn decide_review(&self, id: i64, link: bool) -> Result<ReviewItem, StoreError> {
        on_backend!(self, s => s.decide_review(id, link, &self.matcher.survivorship).await)
    }

    /// Merges `merged` into `survivor`: its source records and identifiers move, its row stays
    /// (marked `merged_into`), and the survivor's golden record is derived again from all its
    /// source records (an unmerge derives both again: exact by construction).
    pub async fn merge(&self, survivor: &str, merged: &str, reason: &str) -> Result<MergeView, StoreError> {
        on_backend!(self, s => s.merge(survivor, merged, reason, &self.matcher.survivorship).await)
    }

    /// A person's clinical records, newest first (with those of persons merged into it).
    pub async fn timeline(
        &self,
        person: &str,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        on_backend!(self, s => s.timeline(person, kind, limit).await)
    }

    /// Carries out a message's merge instruction; returns what was done.
    pub async fn merge_request(
        &self,
        message_id: i64,
        survivor: &str,
        retired: &[crate::model::Identifier],
    ) -> Result<String, StoreError> {
        on_backend!(self, s => s.merge_request(message_id, survivor, retired, &self.matcher.survivorship).await)
    }

    /// Undoes the latest merge into `survivor`.
    pub async fn unmerge(&self, survivor: &str) -> Result<MergeView, StoreError> {
        on_backend!(self, s => s.unmerge(survivor, &self.matcher.survivorship).await)
    }

    pub async fn cursors(&self, connector: &str) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, s => s.cursors(connector).await)
    }

    pub async fn set_cursor(&self, c: &CursorUpdate) -> Result<(), StoreError> {
        on_backend!(self, s => s.set_cursor(c).await)
    }

    pub async fn start_run(
        &self,
        connector: &str,
        cursor_before: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        on_backend!(self, s => s.start_run(connector, cursor_before).await)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn update_run(
        &self,
        id: i64,
        outcome: &str,
        pages: i64,
        resources: i64,
        errors: i64,
        cursor_after: &serde_json::Value,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        on_backend!(self, s => s.update_run(id, outcome, pages, resources, errors, cursor_after, detail).await)
    }

    pub async fn runs(&self, connector: &str, limit: i64) -> Result<Vec<RunView>, StoreError> {
        on_backend!(self, s => s.runs(connector, limit).await)
    }

    /// What `/metrics` and the alerts read from the store (see `sql_ops.rs`).
    pub async fn ops_counts(&self, now_ms: i64) -> Result<OpsCounts, StoreError> {
        on_backend!(self, s => s.ops_counts(now_ms).await)
    }

    /// Writes the readiness row: proves the store takes writes (`/readyz`).
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        on_backend!(self, s => s.probe_write().await)
    }

    /// Every alert's row.
    pub async fn alert_rows(&self) -> Result<Vec<AlertRow>, StoreError> {
        on_backend!(self, s => s.alert_rows().await)
    }

    /// Compare-and-set of one alert's row: true when this write took (see `sql_ops.rs`).
    pub async fn alert_swap(&self, row: &AlertRow, expected: Option<i64>) -> Result<bool, StoreError> {
        on_backend!(self, s => s.alert_swap(row, expected).await)
    }

    pub async fn connectors(&self) -> Result<Vec<ConnectorStatus>, StoreError> {
        on_backend!(self, s => s.connectors().await)
    }

    /// The newest `limit` source records' patches, for estimating the matching model.
    pub async fn sample_patches(&self, limit: i64) -> Result<Vec<crate::model::ProfilePatch>, StoreError> {
        on_backend!(self, s => s.sample_patches(limit).await)
    }

    /// Derives every golden record again when the survivorship rules changed since they were
    /// derived (see `identity_state.golden_rules`); run at start. Returns how many changed.
    pub async fn rederive_golden_records(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.rederive_golden_records(&self.matcher.survivorship).await)
    }

    /// Brings the blocking-key index up to date for records stored without keys (see
    /// `identity_state` in the migrations); run at start when matching is on.
    pub async fn backfill_match_keys(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.backfill_match_keys().await)
    }

    pub async fn set_connector_state(
        &self,
        name: &str,
        kind: &str,
        state: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        on_backend!(self, s => s.set_connector_state(name, kind, state, detail).await)
    }

    pub async fn record_file(&self, outcome: &FileOutcome) -> Result<(), StoreError> {
        on_backend!(self, s => s.record_file(outcome).await)
    }

    pub async fn files(&self, connector: &str) -> Result<Vec<FileOutcome>, StoreError> {
        on_backend!(self, s => s.files(connector).await)
    }

    /// Stores a new API token (its secret only as `token_hash`).
    pub async fn create_token(&self, record: &TokenRecord, token_hash: &str) -> Result<(), StoreError> {
        on_backend!(self, s => s.create_token(record, token_hash).await)
    }

    /// Every API token, revoked and expired ones included, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        on_backend!(self, s => s.tokens().await)
    }

    /// The token whose secret hashes to `token_hash`.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        on_backend!(self, s => s.token_by_hash(token_hash).await)
    }

    /// Revokes the token with this id or name; returns how many were revoked.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<u64, StoreError> {
        on_backend!(self, s => s.revoke_token(id_or_name).await)
    }

    /// Stores a new console session under the hash of its secret.
    pub async fn create_session(&self, id_hash: &str, session: &SessionRecord) -> Result<(), StoreError> {
        on_backend!(self, s => s.create_session(id_hash, session).await)
    }

    /// The live console session whose secret hashes to `id_hash` (see `sql_console.rs`).
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let now = sql::now();
        on_backend!(self, s => s.session(id_hash, &now).await)
    }

    /// Ends a console session; how many rows went.
    pub async fn delete_session(&self, id_hash: &str) -> Result<u64, StoreError> {
        on_backend!(self, s => s.delete_session(id_hash).await)
    }

    /// The newest failed sends with the provider's last answer.
    pub async fn failed_sends(&self, limit: i64) -> Result<Vec<FailedSend>, StoreError> {
        on_backend!(self, s => s.failed_sends(limit).await)
    }

    /// Messages received per connector and minute since `since` (RFC 3339), for the overview.
    pub async fn message_rate(&self, since: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        on_backend!(self, s => s.message_rate(since).await)
    }

    /// Appends audit rows, chained, in one transaction; returns their ids.
    pub async fn append_audit(&self, entries: &[crate::audit::AuditEntry]) -> Result<Vec<i64>, StoreError> {
        on_backend!(self, s => s.append_audit(entries).await)
    }

    /// Appends audit rows without starting the store's writer threads (see
    /// `append_audit_pooled`): for the command line's actions.
    pub async fn append_audit_offline(
        &self,
        entries: &[crate::audit::AuditEntry],
    ) -> Result<Vec<i64>, StoreError> {
        on_backend!(self, s => s.append_audit_pooled(entries).await)
    }

    /// Audit rows matching a filter, newest first.
    pub async fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<crate::audit::AuditRow>, StoreError> {
        on_backend!(self, s => s.audit_rows(filter).await)
    }

    /// One page of the audit log in id order after `after_id`.
    pub async fn audit_page(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::AuditRow>, StoreError> {
        on_backend!(self, s => s.audit_page(after_id, limit).await)
    }

    /// Walks the whole audit log in id order and checks its hash chain (`carehub audit verify`).
    pub async fn verify_audit(&self) -> Result<crate::audit::Verifier, StoreError> {
        let mut v = crate::audit::Verifier::default();
        let mut after = 0;
        loop {
            let page = self.audit_page(after, 5_000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            page.iter().for_each(|r| v.check(r));
        }
        Ok(v)
    }
}
