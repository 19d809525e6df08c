//! The group-commit writer: one thread that owns every write of inbound records.
//!
//! It takes whatever records are waiting (up to `max_batch`), commits them in one transaction,
//! and answers each record's sender. On SQLite the batch runs on this thread through the
//! store's synchronous writer; on PostgreSQL the thread drives the async store. Either way the
//! writer never waits for a turn on the runtime between the statements of a batch.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{Applied, NewRecord, Store, StoreError};

/// Records waiting for their commit, and where to say how it went. The records of one job
/// are committed together or not at all (a page of a pull with its cursor, a FHIR
/// transaction); jobs are grouped into one transaction when they arrive together.
pub struct Job {
    pub records: Vec<NewRecord>,
    pub reply: Reply,
}

pub enum Reply {
    /// A job of one record.
    One(oneshot::Sender<Result<Applied, StoreError>>),
    /// A job of several records, answered together.
    Unit(oneshot::Sender<Result<Vec<Applied>, StoreError>>),
}

impl Reply {
    fn send(self, result: Result<Vec<Applied>, StoreError>) {
        match self {
            Reply::One(tx) => {
                let _ = tx.send(result.and_then(|v| v.into_iter().next().ok_or(StoreError::Empty)));
            }
            Reply::Unit(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// Starts the writer. It runs until every sender is dropped, then commits what is left and
/// ends; the handle completes then. Call it from within the runtime.
pub fn spawn_writer(
    store: Store,
    max_batch: usize,
    queue_depth: usize,
) -> (mpsc::Sender<Job>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(queue_depth);
    let (done, finished) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Handle::current();
    let blocking = store.blocking_writer();
    let apply = move |records: &[NewRecord]| {
        // A bug must not end the writer (and with it all ingest): a batch that panics is
        // answered "send it again later", its transaction rolled back, and the writer goes on.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &blocking {
            Some(w) => w.apply_batch(records),
            None => runtime.block_on(store.apply_batch(records)),
        }))
        .unwrap_or_else(|_| {
            tracing::error!(
                records = records.len(),
                "writing a batch failed unexpectedly; its senders are told to retry"
            );
            Err(StoreError::WriterGone)
        })
    };
    let thread = std::thread::Builder::new()
        .name("carehub-writer".into())
        .spawn(move || {
            let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
            while rx.blocking_recv_many(&mut jobs, max_batch) > 0 {
                commit_group(&apply, std::mem::take(&mut jobs));
            }
            tracing::debug!("ingest writer stopped");
            let _ = done.send(());
        });
    if let Err(e) = thread {
        // Without a thread there is no writer: every submit is answered "send it again later".
        tracing::error!(error = %e, "cannot start the ingest writer thread");
    }
    let handle = tokio::spawn(async move {
        let _ = finished.await;
    });
    (tx, handle)
}

fn commit_group(apply: &impl Fn(&[NewRecord]) -> Result<Vec<Applied>, StoreError>, jobs: Vec<Job>) {
    let mut all: Vec<NewRecord> = Vec::with_capacity(jobs.len());
    let mut units = Vec::with_capacity(jobs.len());
    for job in jobs {
        let start = all.len();
        all.extend(job.records);
        units.push((start..all.len(), job.reply));
    }
    match apply(&all) {
        Ok(applied) => {
            let mut applied = applied.into_iter();
            for (range, reply) in units {
                reply.send(Ok(applied.by_ref().take(range.len()).collect()));
            }
        }
        Err(e) if units.len() > 1 => {
            // One bad job must not sink the others: retry them one by one (each job whole).
            tracing::warn!(error = %e, records = all.len(), "a group commit failed; retrying its jobs one by one");
            for (range, reply) in units {
                reply.send(apply(&all[range]));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "a commit failed");
            let reason = e.to_string();
            for (_, reply) in units {
                reply.send(Err(StoreError::Sql(sqlx::Error::Protocol(reason.clone()))));
            }
        }
    }
}
