//! The group-commit writer: one thread that owns every write of inbound records.
//!
//! It takes whatever records are waiting (up to `max_batch`), commits them in one transaction,
//! and answers each record's sender. On SQLite the batch runs on this thread through the
//! store's synchronous writer; on PostgreSQL the thread drives the async store. Either way the
//! writer never waits for a turn on the runtime between the statements of a batch.
//!
//! On SQLite a second thread, the syncer, answers the senders: it syncs the write-ahead log
//! once for every group committed since its last sync, then sends their answers. Nobody hears
//! "stored" before the disk has it, and the writer commits the next group while the disk
//! syncs this one (measured: a sync ~270 µs, about as long as committing a group).

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{Applied, BlockingWriter, NewRecord, Store, StoreError};

/// Records waiting for their commit, and where to say how it went. The records of one job
/// are committed together or not at all (a page of a pull with its cursor, a FHIR
/// transaction); jobs are grouped into one transaction when they arrive together.
pub struct Job {
    pub records: Vec<NewRecord>,
    pub reply: Reply,
    /// The jobs of one ordered stream (a pull's pages): once one of them fails, the later ones
    /// are refused unwritten, so that a sender may queue the next job before hearing of this one
    /// and still never commit a cursor past records that failed.
    pub chain: Option<Chain>,
}

/// Shared by the jobs of one ordered stream; see [`Job::chain`].
#[derive(Clone, Debug, Default)]
pub struct Chain(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Chain {
    fn broken(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    fn break_off(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A job refused because an earlier job of its chain failed.
fn after_failure() -> StoreError {
    StoreError::Failed("an earlier page of this run could not be stored".into())
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
    let syncer = blocking.clone().map(Syncer::spawn);
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
                let answers = commit_group(&apply, std::mem::take(&mut jobs));
                match &syncer {
                    Some(s) => s.answer_when_durable(answers),
                    None => answers.send(),
                }
            }
            // The syncer answers what it holds before it ends.
            if let Some(s) = syncer {
                s.finish();
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

/// The answers of one group, each with its job's outcome.
struct Answers(Vec<(Reply, Result<Vec<Applied>, StoreError>)>);

impl Answers {
    fn send(self) {
        for (reply, outcome) in self.0 {
            reply.send(outcome);
        }
    }
}

fn commit_group(
    apply: &impl Fn(&[NewRecord]) -> Result<Vec<Applied>, StoreError>,
    jobs: Vec<Job>,
) -> Answers {
    let mut all: Vec<NewRecord> = Vec::with_capacity(jobs.len());
    let mut units = Vec::with_capacity(jobs.len());
    let mut refused = Vec::new();
    for job in jobs {
        if job.chain.as_ref().is_some_and(Chain::broken) {
            refused.push((job.reply, Err(after_failure())));
            continue;
        }
        let start = all.len();
        all.extend(job.records);
        units.push((start..all.len(), job.reply, job.chain));
    }
    if units.is_empty() {
        return Answers(refused);
    }
    let mut answers: Vec<_> = match apply(&all) {
        Ok(applied) => {
            let mut applied = applied.into_iter();
            units
                .into_iter()
                .map(|(range, reply, _)| (reply, Ok(applied.by_ref().take(range.len()).collect())))
                .collect()
        }
        Err(e) if units.len() > 1 => {
            // One bad job must not sink the others: retry them one by one (each job whole), in
            // order, so that a failure still stops the rest of its chain.
            tracing::warn!(error = %e, records = all.len(), "a group commit failed; retrying its jobs one by one");
            units
                .into_iter()
                .map(|(range, reply, chain)| {
                    if chain.as_ref().is_some_and(Chain::broken) {
                        return (reply, Err(after_failure()));
                    }
                    let outcome = apply(&all[range]);
                    if outcome.is_err()
                        && let Some(chain) = &chain
                    {
                        chain.break_off();
                    }
                    (reply, outcome)
                })
                .collect()
        }
        Err(e) => {
            tracing::error!(error = %e, "a commit failed");
            let reason = e.to_string();
            units
                .into_iter()
                .map(|(_, reply, chain)| {
                    if let Some(chain) = &chain {
                        chain.break_off();
                    }
                    (reply, Err(StoreError::Sql(sqlx::Error::Protocol(reason.clone()))))
                })
                .collect()
        }
    };
    answers.append(&mut refused);
    Answers(answers)
}

/// The thread that makes committed groups durable and only then answers their senders.
struct Syncer {
    writer: BlockingWriter,
    queue: Option<std::sync::mpsc::Sender<Answers>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn spawn(writer: BlockingWriter) -> Syncer {
        let (queue, waiting) = std::sync::mpsc::channel::<Answers>();
        let own = writer.clone();
        let thread = std::thread::Builder::new()
            .name("carehub-syncer".into())
            .spawn(move || {
                while let Ok(first) = waiting.recv() {
                    // One sync covers every group committed before it starts.
                    let groups: Vec<Answers> = std::iter::once(first).chain(waiting.try_iter()).collect();
                    answer_after_sync(&own, groups);
                }
            });
        match thread {
            Ok(thread) => Syncer {
                writer,
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the ingest syncer thread; the writer syncs each group itself");
                Syncer {
                    writer,
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// Sends the answers once everything committed so far is on disk. Groups that hold only
    /// failures go the same way, which keeps the answers in the order of the commits.
    fn answer_when_durable(&self, answers: Answers) {
        let unsent = match &self.queue {
            Some(queue) => match queue.send(answers) {
                Ok(()) => return,
                Err(returned) => returned.0,
            },
            None => answers,
        };
        answer_after_sync(&self.writer, vec![unsent]);
    }

    /// Answers what is still waiting, then ends the thread.
    fn finish(mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer_after_sync(writer: &BlockingWriter, groups: Vec<Answers>) {
    let synced = writer.make_durable();
    let failure = synced.as_ref().err().map(|e| {
        tracing::error!(error = %e, "syncing the store to disk failed; the senders of the last commits are told to send again");
        e.to_string()
    });
    for group in groups {
        for (reply, outcome) in group.0 {
            let outcome = match (&failure, outcome) {
                // Committed but perhaps not on disk: a sender that sends again is recognised
                // by its control id and gets its ACK then.
                (Some(reason), Ok(_)) => Err(StoreError::Sync(std::io::Error::other(reason.clone()))),
                (_, outcome) => outcome,
            };
            reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Applied, Disposition, MessageStatus};

    fn page(control_id: &str) -> NewRecord {
        NewRecord {
            connector: "pull".into(),
            origin: None,
            received_at: "2026-11-24T00:00:00Z".into(),
            sender: None,
            control_id: Some(control_id.into()),
            message_type: None,
            charset: None,
            content_hash: control_id.into(),
            raw: Vec::new(),
            disposition: Disposition::Unmapped {
                reason: String::new(),
            },
            cursor: None,
            match_input: None,
            reprocess: None,
        }
    }

    fn job(
        control_id: &str,
        chain: Option<&Chain>,
    ) -> (Job, oneshot::Receiver<Result<Vec<Applied>, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            records: vec![page(control_id)],
            reply: Reply::Unit(reply),
            chain: chain.cloned(),
        };
        (job, rx)
    }

    /// A store that fails every group holding a record with control id "bad", and remembers
    /// what it stored.
    fn store(
        written: &std::sync::Mutex<Vec<String>>,
    ) -> impl Fn(&[NewRecord]) -> Result<Vec<Applied>, StoreError> + '_ {
        move |records: &[NewRecord]| {
            let ids: Vec<String> = records.iter().filter_map(|r| r.control_id.clone()).collect();
            if ids.iter().any(|id| id == "bad") {
                return Err(StoreError::Failed("disk full".into()));
            }
            written.lock().unwrap().extend(ids);
            Ok(records
                .iter()
                .map(|_| Applied {
                    message_id: 1,
                    status: MessageStatus::Unmapped,
                    person_id: None,
                })
                .collect())
        }
    }

    #[test]
    fn a_page_queued_behind_a_failed_page_of_its_pull_is_not_written() {
        let written = std::sync::Mutex::new(Vec::new());
        let apply = store(&written);
        let pull = Chain::default();
        let other = Chain::default();
        let (first, mut first_rx) = job("bad", Some(&pull));
        let (second, mut second_rx) = job("page-2", Some(&pull));
        let (unrelated, mut unrelated_rx) = job("other-1", Some(&other));
        // All three arrive together: one group, which fails, then one by one.
        commit_group(&apply, vec![first, second, unrelated]).send();
        assert!(first_rx.try_recv().unwrap().is_err());
        let refused = second_rx.try_recv().unwrap().unwrap_err();
        assert!(refused.to_string().contains("earlier page"), "{refused}");
        assert!(
            unrelated_rx.try_recv().unwrap().is_ok(),
            "another pull is not held up"
        );
        // A later page of the failed pull, in a group of its own, is refused too.
        let (third, mut third_rx) = job("page-3", Some(&pull));
        commit_group(&apply, vec![third]).send();
        assert!(third_rx.try_recv().unwrap().is_err());
        assert_eq!(*written.lock().unwrap(), vec!["other-1".to_string()]);
    }

    #[test]
    fn pages_of_a_pull_that_do_not_fail_are_written_in_order() {
        let written = std::sync::Mutex::new(Vec::new());
        let apply = store(&written);
        let pull = Chain::default();
        let (a, mut a_rx) = job("page-1", Some(&pull));
        let (b, mut b_rx) = job("page-2", Some(&pull));
        commit_group(&apply, vec![a, b]).send();
        assert!(a_rx.try_recv().unwrap().is_ok());
        assert!(b_rx.try_recv().unwrap().is_ok());
        assert_eq!(
            *written.lock().unwrap(),
            vec!["page-1".to_string(), "page-2".to_string()]
        );
    }
}
