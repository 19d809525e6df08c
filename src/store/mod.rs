//! The profile store: persons, identifiers, source records with provenance, the message log,
//! connector state. All SQL of the hub lives under this folder.
//!
//! [`Store`] is the one door. It speaks sqlx over SQLite (the embedded default, one file in WAL
//! mode); PostgreSQL slots in as a second backend behind the same methods and the same tests.
//! Writes from every source arrive in groups through [`Store::apply_batch`], one transaction per
//! group, so that an MLLP ACK can wait for a commit without each message paying for its own.

mod batch;
mod sqlite;
mod sqlite_ingest;
mod types;

pub use types::*;

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::config::{StoreConfig, redact_url};

/// Store failures. None of them carries patient data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot create the folder for the store: {0}")]
    Folder(std::io::Error),
    #[error("migrating the store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store backend {0} is not available yet (use sqlite://PATH)")]
    Unsupported(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the store answered nothing for a record")]
    Empty,
}

/// The profile store.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens the store named by `config.url` and brings its schema up to date.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        if let Some(path) = config.url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            // A database that is busy or not reachable yet gets a few tries with backoff; a
            // configuration error (a folder that cannot be made) fails at once.
            let open = || {
                sqlite::SqliteStore::open(path, config.max_connections, timeout, config.sqlite_synchronous)
            };
            let store = open
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
                        url: redact_url(&config.url),
                        source,
                    },
                    other => other,
                })?;
            let s = Store {
                backend: Backend::Sqlite(store),
            };
            s.migrate().await?;
            Ok(s)
        } else {
            Err(StoreError::Unsupported(redact_url(&config.url)))
        }
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.migrate().await,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.ping().await,
        }
    }

    /// Writes a group of inbound records in one transaction: each one's message-log row and,
    /// for mapped records, its effect on the person. Either all of them commit or none.
    pub async fn apply_batch(&self, records: &[NewRecord]) -> Result<Vec<Applied>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.apply_batch(records).await,
        }
    }

    /// Persons holding an identifier with this value (and system, when given).
    pub async fn find_persons(
        &self,
        value: &str,
        system: Option<&str>,
    ) -> Result<Vec<PersonView>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.find_persons(value, system).await,
        }
    }

    pub async fn person(&self, id: &str) -> Result<Option<PersonView>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.person(id).await,
        }
    }

    pub async fn person_count(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.person_count().await,
        }
    }

    pub async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageSummary>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.messages(filter).await,
        }
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.message(id).await,
        }
    }

    pub async fn connectors(&self) -> Result<Vec<ConnectorStatus>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.connectors().await,
        }
    }

    pub async fn set_connector_state(
        &self,
        name: &str,
        kind: &str,
        state: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.set_connector_state(name, kind, state, detail).await,
        }
    }

    pub async fn record_file(&self, outcome: &FileOutcome) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.record_file(outcome).await,
        }
    }

    pub async fn files(&self, connector: &str) -> Result<Vec<FileOutcome>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.files(connector).await,
        }
    }
}
