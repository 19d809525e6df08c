//! The group-commit writer: one task that owns every write of inbound records.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{Applied, NewRecord, Store, StoreError};

/// One record waiting for its commit, and where to say how it went.
pub struct Job {
    pub record: NewRecord,
    pub reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// Starts the writer. It runs until every sender is dropped, then commits what is left and ends.
pub fn spawn_writer(
    store: Store,
    max_batch: usize,
    queue_depth: usize,
) -> (mpsc::Sender<Job>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(queue_depth);
    let handle = tokio::spawn(async move {
        let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
        while rx.recv_many(&mut jobs, max_batch).await > 0 {
            commit_group(&store, std::mem::take(&mut jobs)).await;
        }
        tracing::debug!("ingest writer stopped");
    });
    (tx, handle)
}

async fn commit_group(store: &Store, jobs: Vec<Job>) {
    let (records, replies): (Vec<NewRecord>, Vec<_>) = jobs.into_iter().map(|j| (j.record, j.reply)).unzip();
    match store.apply_batch(&records).await {
        Ok(applied) => {
            for (reply, a) in replies.into_iter().zip(applied) {
                let _ = reply.send(Ok(a));
            }
        }
        Err(e) if records.len() > 1 => {
            // One bad record must not sink the others: retry them one by one.
            tracing::warn!(error = %e, records = records.len(), "a group commit failed; retrying its records one by one");
            for (record, reply) in records.iter().zip(replies) {
                let result = store.apply_batch(std::slice::from_ref(record)).await;
                let _ = reply.send(result.and_then(|v| v.into_iter().next().ok_or(StoreError::Empty)));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "a commit failed");
            for reply in replies {
                let _ = reply.send(Err(StoreError::Sql(sqlx::Error::Protocol(e.to_string()))));
            }
        }
    }
}
