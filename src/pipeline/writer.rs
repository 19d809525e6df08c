//! The group-commit writer: one thread that owns every write of inbound records.
//!
//! It takes whatever records are waiting (up to `max_batch`), commits them in one transaction,
//! and answers each record's sender. On SQLite the batch runs on this thread through the
//! store's synchronous writer; on PostgreSQL the thread drives the async store. Either way the
//! writer never waits for a turn on the runtime between the statements of a batch.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{Applied, NewRecord, Store, StoreError};

/// One record waiting for its commit, and where to say how it went.
pub struct Job {
    pub record: NewRecord,
    pub reply: oneshot::Sender<Result<Applied, StoreError>>,
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
    let (records, replies): (Vec<NewRecord>, Vec<_>) = jobs.into_iter().map(|j| (j.record, j.reply)).unzip();
    match apply(&records) {
        Ok(applied) => {
            for (reply, a) in replies.into_iter().zip(applied) {
                let _ = reply.send(Ok(a));
            }
        }
        Err(e) if records.len() > 1 => {
            // One bad record must not sink the others: retry them one by one.
            tracing::warn!(error = %e, records = records.len(), "a group commit failed; retrying its records one by one");
            for (record, reply) in records.iter().zip(replies) {
                let result = apply(std::slice::from_ref(record));
                let _ = reply.send(result.and_then(|v| v.into_iter().next().ok_or(StoreError::Empty)));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "a commit failed");
            let reason = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Sql(sqlx::Error::Protocol(reason.clone()))));
            }
        }
    }
}
