//! The SQLite outbox writer: the relay's, the channel workers' and the embedded queue's writes
//! on one thread, grouped.
//!
//! Every send passes through about eight small writes (staged, queued, claimed from the queue,
//! claimed by a worker, its attempt, its outcome, acknowledged). Through the sqlx pool each
//! statement was a hop to a connection's thread and back, and each caller's transaction a
//! commit of its own: the hops, not the SQL, filled the two cores. Here callers hand their
//! operation to one thread, which runs whatever has gathered in one transaction on the
//! store's writer connection (the one ingest uses: SQLite has one writer anyway) and commits;
//! a second thread makes the commits durable with one sync and answers every caller, while
//! the first commits the next group. An operation that fails is run
//! again alone, so that it fails alone. A caller that gets Ok knows its write is on disk, as
//! before.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::sql::now;
use super::sqlite::SqliteStore;
use super::types::*;

/// Operations in one transaction, at most.
const MAX_GROUP: usize = 256;

/// One write, as a caller hands it over.
pub(super) enum Op {
    QueuePush(Vec<(String, String, String, i64)>),
    QueueClaim {
        queue: String,
        now_ms: i64,
        lock_until: i64,
        limit: i64,
    },
    QueueAck(Vec<i64>),
    QueueRetry {
        id: i64,
        payload: String,
        available_at: i64,
    },
    QueueDead {
        id: i64,
        reason: String,
    },
    StageSends(Vec<Resolved>),
    /// The embedded queue's publish: staged, queued and marked in one transaction (a queue
    /// row per send, in the same order).
    StageQueue {
        sends: Vec<(Resolved, i64)>,
        rows: Vec<(String, String, String, i64)>,
    },
    MarkPublished(Vec<(String, i64)>),
    SettlePending {
        id: String,
        status: String,
        due_at: Option<i64>,
        detail: String,
    },
    SendOps {
        claims: Vec<SendClaim>,
        outcomes: Vec<AttemptOutcome>,
    },
    /// Audit rows (`sqlite_audit.rs`), chained after the last one.
    AuditAppend(Vec<crate::audit::AuditEntry>),
}

impl Op {
    /// Whether the caller must wait for the disk, or only for the commit. Claims (of queue
    /// messages, of sends) and acknowledgements only keep live workers apart: after a crash
    /// every hold is void anyway (a send whose outcome is not on disk is sent again, as the
    /// delivery contract allows, and an acknowledgement lost is a redelivery the claim finds
    /// settled). Everything else says "stored" and waits for the sync.
    fn needs_sync(&self) -> bool {
        match self {
            Op::QueueClaim { .. } | Op::QueueAck(_) => false,
            Op::SendOps { outcomes, .. } => !outcomes.is_empty(),
            _ => true,
        }
    }
}

/// What an operation answers.
pub(super) enum Done {
    Nothing,
    Rows(Vec<QueueRow>),
    Claims(Vec<Claim>),
    Ids(Vec<i64>),
}

type Reply = oneshot::Sender<Result<Done, StoreError>>;

/// The handle callers send through; the thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub(super) struct OutboxWriter {
    jobs: mpsc::Sender<(Op, Reply)>,
}

impl OutboxWriter {
    /// Starts the threads. `store` must not hold this writer (the threads would keep
    /// themselves).
    pub(super) fn start(store: SqliteStore) -> Result<OutboxWriter, StoreError> {
        let (jobs, rx) = mpsc::channel(MAX_GROUP * 4);
        let (committed, to_sync) = std::sync::mpsc::channel();
        let syncing = store.clone();
        let failed = |e: std::io::Error| StoreError::Failed(format!("cannot start the outbox writer: {e}"));
        std::thread::Builder::new()
            .name("carehub-outbox-sync".into())
            .spawn(move || sync(syncing, to_sync))
            .map_err(failed)?;
        std::thread::Builder::new()
            .name("carehub-outbox".into())
            .spawn(move || run(store, rx, committed))
            .map_err(failed)?;
        Ok(OutboxWriter { jobs })
    }

    pub(super) async fn call(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((op, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// A committed group's answers, waiting for the sync that makes them true.
type Committed = Vec<(Reply, Result<Done, StoreError>)>;

/// The writer thread: commits each gathering, then hands its answers to the sync thread and
/// goes on with the next while the disk works.
fn run(
    store: SqliteStore,
    mut rx: mpsc::Receiver<(Op, Reply)>,
    committed: std::sync::mpsc::Sender<Committed>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<Op>, Vec<Reply>) = jobs.into_iter().unzip();
        // A bug must not end the thread (and with it every send): a group that panics is
        // answered with an error, its transaction rolled back with the connection, which is
        // opened afresh for the next group.
        let grouped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.with_writer(|w| group(w.connection(), &ops))
        }))
        .unwrap_or_else(|_| {
            tracing::error!(
                writes = ops.len(),
                "the outbox writer failed unexpectedly; its writes are answered with an error"
            );
            Err(StoreError::WriterGone)
        });
        match grouped {
            Ok(answers) => {
                let mut durable = Vec::new();
                for ((op, reply), answer) in ops.iter().zip(replies).zip(answers) {
                    if op.needs_sync() && answer.is_ok() {
                        durable.push((reply, answer));
                    } else {
                        let _ = reply.send(answer);
                    }
                }
                if !durable.is_empty() && committed.send(durable).is_err() {
                    return;
                }
            }
            Err(e) => {
                // The commit failed: nothing of the group is stored.
                let e = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Failed(e.clone())));
                }
            }
        }
    }
}

/// The sync thread: one sync of the write-ahead log for every group committed since the last,
/// then their answers. A group committed after an earlier one is synced with it or after it,
/// never before, so no answer says "stored" about a write the disk may not have.
fn sync(store: SqliteStore, to_sync: std::sync::mpsc::Receiver<Committed>) {
    while let Ok(first) = to_sync.recv() {
        let mut groups = vec![first];
        groups.extend(to_sync.try_iter());
        let synced = store.make_durable().map_err(|e| e.to_string());
        for (reply, answer) in groups.into_iter().flatten() {
            let answer = match (&synced, answer) {
                (Err(e), Ok(_)) => Err(StoreError::Failed(e.clone())),
                (_, answer) => answer,
            };
            let _ = reply.send(answer);
        }
    }
}

/// Runs the operations in one transaction. Should one fail, the transaction is rolled back
/// and each operation runs again in a transaction of its own, so that only the failing one
/// answers its error (savepoints around each would cost every group for a rare case).
fn group(c: &mut Connection, ops: &[Op]) -> Result<Vec<Result<Done, StoreError>>, StoreError> {
    let at = now();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let together: Result<Vec<Done>, StoreError> = ops.iter().map(|op| apply(&tx, op, &at)).collect();
    match together {
        Ok(answers) => {
            tx.commit()?;
            Ok(answers.into_iter().map(Ok).collect())
        }
        Err(e) => {
            // SQLite may have rolled back already (a full disk): a failed rollback is no news.
            let _ = tx.rollback();
            if ops.len() == 1 {
                return Ok(vec![Err(e)]);
            }
            // Each alone; whatever happens to one (even its BEGIN or COMMIT failing) is its own
            // answer, and those committed are answered as stored once synced.
            Ok(ops.iter().map(|op| alone(c, op, &at)).collect())
        }
    }
}

/// One operation in a transaction of its own.
fn alone(c: &mut Connection, op: &Op, at: &str) -> Result<Done, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match apply(&tx, op, at) {
        Ok(done) => {
            tx.commit()?;
            Ok(done)
        }
        Err(e) => {
            let _ = tx.rollback();
            Err(e)
        }
    }
}

fn apply(c: &Connection, op: &Op, at: &str) -> Result<Done, StoreError> {
    match op {
        Op::QueuePush(rows) => {
            for row in rows {
                push(c, row, at)?;
            }
            Ok(Done::Nothing)
        }
        Op::QueueClaim {
            queue,
            now_ms,
            lock_until,
            limit,
        } => {
            // The longest due first, in the order of `queue_messages_ready`: the claim reads the
            // messages in flight before the ones it takes, not the whole backlog.
            let mut claim = c.prepare_cached(
                "UPDATE queue_messages SET locked_until = ?1, deliveries = deliveries + 1
                 WHERE id IN (SELECT id FROM queue_messages WHERE queue = ?2 AND dead_reason IS NULL AND available_at <= ?3
                   AND (locked_until IS NULL OR locked_until < ?3) ORDER BY available_at, id LIMIT ?4)
                 RETURNING id, payload, deliveries",
            )?;
            let mut rows = claim
                .query_map(params![lock_until, queue, now_ms, limit], |r| {
                    Ok(QueueRow {
                        id: r.get(0)?,
                        payload: r.get(1)?,
                        deliveries: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.sort_by_key(|r| r.id);
            Ok(Done::Rows(rows))
        }
        Op::AuditAppend(entries) => Ok(Done::Ids(super::sqlite_audit::append(c, entries)?)),
        Op::QueueAck(ids) => {
            let mut delete = c.prepare_cached("DELETE FROM queue_messages WHERE id = ?1")?;
            for id in ids {
                delete.execute([id])?;
            }
            Ok(Done::Nothing)
        }
        Op::QueueRetry {
            id,
            payload,
            available_at,
        } => {
            c.prepare_cached(
                "UPDATE queue_messages SET payload = ?1, available_at = ?2, locked_until = NULL, deliveries = 0 WHERE id = ?3",
            )?
            .execute(params![payload, available_at, id])?;
            Ok(Done::Nothing)
        }
        Op::QueueDead { id, reason } => {
            c.prepare_cached(
                "UPDATE queue_messages SET dead_reason = ?1, locked_until = NULL WHERE id = ?2",
            )?
            .execute(params![reason, id])?;
            Ok(Done::Nothing)
        }
        Op::StageSends(sends) => {
            let mut stage = c.prepare_cached(
                "UPDATE notifications SET channel = ?1, address = ?2, language = ?3, title = ?4, body = ?5,
                   updated_at = ?6, published_at = ?6, timezone = ?8 WHERE id = ?7 AND status = 'pending'",
            )?;
            for s in sends {
                stage.execute(params![
                    s.channel, s.address, s.language, s.title, s.body, at, s.id, s.timezone
                ])?;
            }
            Ok(Done::Nothing)
        }
        Op::StageQueue { sends, rows } => {
            // Queued at once (the queue is in this transaction); a send no longer pending
            // (cancelled meanwhile, or taken back by a worker) is neither changed nor queued.
            let mut stage = c.prepare_cached(
                "UPDATE notifications SET channel = ?1, address = ?2, language = ?3, title = ?4, body = ?5,
                   updated_at = ?6, published_at = ?6, timezone = ?8, status = 'queued'
                 WHERE id = ?7 AND status = 'pending' AND attempts = ?9",
            )?;
            for ((s, attempts), row) in sends.iter().zip(rows) {
                let staged = stage.execute(params![
                    s.channel, s.address, s.language, s.title, s.body, at, s.id, s.timezone, attempts
                ])?;
                if staged > 0 {
                    push(c, row, at)?;
                }
            }
            Ok(Done::Nothing)
        }
        Op::MarkPublished(ids) => {
            let mut mark = c.prepare_cached(
                "UPDATE notifications SET status = 'queued', updated_at = ?1
                 WHERE id = ?2 AND status = 'pending' AND attempts = ?3",
            )?;
            for (id, attempts) in ids {
                mark.execute(params![at, id, attempts])?;
            }
            Ok(Done::Nothing)
        }
        Op::SettlePending {
            id,
            status,
            due_at,
            detail,
        } => {
            c.prepare_cached(
                "UPDATE notifications SET status = ?1, due_at = COALESCE(?2, due_at), detail = ?3, updated_at = ?4
                 WHERE id = ?5 AND status IN ('pending', 'queued')",
            )?
            .execute(params![status, due_at, detail, at, id])?;
            Ok(Done::Nothing)
        }
        Op::SendOps { claims, outcomes } => {
            for o in outcomes {
                record(c, o, at)?;
            }
            let mut answers = Vec::with_capacity(claims.len());
            for claim in claims {
                answers.push(take(c, claim, at)?);
            }
            Ok(Done::Claims(answers))
        }
    }
}

/// One message into the embedded queue: (queue, message id, payload, available at).
fn push(
    c: &Connection,
    (queue, message_id, payload, available_at): &(String, String, String, i64),
    at: &str,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO queue_messages (queue, message_id, payload, available_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![queue, message_id, payload, available_at, at])?;
    Ok(())
}

/// A provider call and its effect on the notification.
fn record(c: &Connection, o: &AttemptOutcome, at: &str) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO notification_attempts (notification_id, attempt, channel, outcome, provider_id, detail, at)
         SELECT id, attempts, ?2, ?3, ?4, ?5, ?6 FROM notifications WHERE id = ?1",
    )?
    .execute(params![o.id, o.channel, o.outcome, o.provider_id, o.detail, at])?;
    let sent = matches!(o.status, "sent" | "delivered").then_some(at);
    let delivered = (o.status == "delivered").then_some(at);
    c.prepare_cached(
        "UPDATE notifications SET status = ?1, provider_id = COALESCE(?2, provider_id), detail = ?3,
           due_at = COALESCE(?4, due_at), claimed_until = NULL, updated_at = ?5,
           sent_at = COALESCE(sent_at, ?6), delivered_at = COALESCE(delivered_at, ?7)
         WHERE id = ?8 AND (status = 'sending' OR ?1 IN ('sent', 'delivered', 'failed'))",
    )?
    .execute(params![
        o.status,
        o.provider_id,
        o.detail,
        o.due_at,
        at,
        sent,
        delivered,
        o.id
    ])?;
    Ok(())
}

/// A worker takes a send: only one staged for this channel, not settled, and not held by
/// another worker (the same send twice in one group: the first takes it, the second finds
/// it held).
fn take(c: &Connection, claim: &SendClaim, at: &str) -> Result<Claim, StoreError> {
    // `channel || ''` keeps SQLite on the primary key rather than the channel's index.
    let taken = c
        .prepare_cached(
            "UPDATE notifications SET status = 'sending', claimed_until = ?1, attempts = attempts + 1, updated_at = ?2
             WHERE id = ?3 AND channel || '' = ?4 AND body IS NOT NULL
               AND status IN ('pending', 'queued', 'sending') AND (claimed_until IS NULL OR claimed_until < ?5)
             RETURNING rule, timezone, person_id, category, address, language, title, body, attempts",
        )?
        .query_row(
            params![claim.now_ms + claim.lease_ms, at, claim.id, claim.channel, claim.now_ms],
            |r| {
                Ok(ClaimedSend {
                    id: claim.id.clone(),
                    rule: r.get(0)?,
                    timezone: r.get(1)?,
                    person_id: r.get(2)?,
                    category: r.get(3)?,
                    channel: claim.channel.clone(),
                    address: r.get(4)?,
                    language: r.get(5)?,
                    title: r.get(6)?,
                    body: r.get(7)?,
                    attempts: r.get::<_, i64>(8)? - 1,
                })
            },
        )
        .optional()?;
    if let Some(send) = taken {
        return Ok(Claim::Send(Box::new(send)));
    }
    let state: Option<(String, Option<String>)> = c
        .prepare_cached("SELECT status, channel FROM notifications WHERE id = ?1")?
        .query_row([&claim.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match state {
        None => Claim::Missing,
        Some((status, _)) if status == "sending" => Claim::Busy,
        Some((status, Some(ch))) if ch != claim.channel => {
            Claim::Settled(format!("{status} (moved to {ch})"))
        }
        Some((status, _)) => Claim::Settled(status),
    })
}

/// The async side: the same methods the PostgreSQL store has, through the writer thread.
impl SqliteStore {
    async fn unit(&self, op: Op) -> Result<(), StoreError> {
        self.outbox()?.call(op).await.map(|_| ())
    }

    /// Writes the sends as they will be queued (see [`super::Store::stage_sends`]).
    pub async fn stage_sends(&self, sends: &[Resolved]) -> Result<(), StoreError> {
        self.unit(Op::StageSends(sends.to_vec())).await
    }

    /// See [`super::Store::stage_and_enqueue`].
    pub async fn stage_and_enqueue(
        &self,
        sends: &[(Resolved, i64)],
        rows: &[(String, String, String, i64)],
    ) -> Result<(), StoreError> {
        self.unit(Op::StageQueue {
            sends: sends.to_vec(),
            rows: rows.to_vec(),
        })
        .await
    }

    pub async fn mark_published(&self, ids: &[(String, i64)]) -> Result<(), StoreError> {
        self.unit(Op::MarkPublished(ids.to_vec())).await
    }

    pub async fn settle_pending(
        &self,
        id: &str,
        status: &str,
        due_at: Option<i64>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.unit(Op::SettlePending {
            id: id.to_string(),
            status: status.to_string(),
            due_at,
            detail: detail.to_string(),
        })
        .await
    }

    pub async fn send_ops(
        &self,
        claims: &[SendClaim],
        outcomes: &[AttemptOutcome],
    ) -> Result<Vec<Claim>, StoreError> {
        let op = Op::SendOps {
            claims: claims.to_vec(),
            outcomes: outcomes.to_vec(),
        };
        match self.outbox()?.call(op).await? {
            Done::Claims(claims) => Ok(claims),
            _ => Err(StoreError::Empty),
        }
    }

    /// Appends audit rows, chained, on the writer's connection; their ids once on disk.
    pub async fn append_audit(&self, entries: &[crate::audit::AuditEntry]) -> Result<Vec<i64>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        match self.outbox()?.call(Op::AuditAppend(entries.to_vec())).await? {
            Done::Ids(ids) => Ok(ids),
            _ => Err(StoreError::Empty),
        }
    }

    pub async fn queue_push(&self, queue_rows: &[(String, String, String, i64)]) -> Result<(), StoreError> {
        self.unit(Op::QueuePush(queue_rows.to_vec())).await
    }

    pub async fn queue_claim(
        &self,
        queue: &str,
        now_ms: i64,
        lock_until: i64,
        limit: i64,
    ) -> Result<Vec<QueueRow>, StoreError> {
        let op = Op::QueueClaim {
            queue: queue.to_string(),
            now_ms,
            lock_until,
            limit,
        };
        match self.outbox()?.call(op).await? {
            Done::Rows(rows) => Ok(rows),
            _ => Err(StoreError::Empty),
        }
    }

    pub async fn queue_ack(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.unit(Op::QueueAck(ids.to_vec())).await
    }

    pub async fn queue_retry(&self, id: i64, payload: &str, available_at: i64) -> Result<(), StoreError> {
        self.unit(Op::QueueRetry {
            id,
            payload: payload.to_string(),
            available_at,
        })
        .await
    }

    pub async fn queue_dead(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        self.unit(Op::QueueDead {
            id,
            reason: reason.to_string(),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite_writer::SqliteWriter;

    /// A migrated store in `dir`, and the path of its file.
    async fn fresh(dir: &std::path::Path) -> (crate::store::Store, String) {
        let path = dir.join("outbox.db");
        let store = crate::store::Store::open(&crate::config::StoreConfig {
            url: format!("sqlite://{}", path.display()),
            ..Default::default()
        })
        .await
        .unwrap();
        (store, path.to_str().unwrap().to_string())
    }

    fn pending_notification(c: &Connection, id: &str) {
        c.execute(
            "INSERT INTO notifications (id, rule, category, person_id, dedupe_key, template, channels, context, cause,
               status, due_at, created_at, updated_at)
             VALUES (?1, 'r', 'transactional', 'p', ?1, 't', '[\"sms\"]', '{}', 'test', 'pending', 0, 'now', 'now')",
            [id],
        )
        .unwrap();
    }

    #[tokio::test]
    async fn an_operation_that_fails_fails_alone_and_the_rest_of_its_group_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, path) = fresh(dir.path()).await;
        let mut writer = SqliteWriter::open(&path, None).unwrap();
        let c = writer.connection();
        pending_notification(c, "n-1");
        let push = |id: &str| {
            Op::QueuePush(vec![(
                "send.sms".into(),
                id.into(),
                format!("{{\"n\":\"{id}\"}}"),
                0,
            )])
        };
        let ops = [
            push("n-1"),
            // Not a status the table allows: this one fails.
            Op::SettlePending {
                id: "n-1".into(),
                status: "lost".into(),
                due_at: None,
                detail: "x".into(),
            },
            Op::SettlePending {
                id: "n-1".into(),
                status: "suppressed".into(),
                due_at: None,
                detail: "no consent".into(),
            },
            push("n-2"),
        ];
        let answers = group(c, &ops).unwrap();
        let ok: Vec<bool> = answers.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, true]);
        let queued: i64 = c
            .query_row("SELECT COUNT(*) FROM queue_messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(queued, 2, "both pushes are kept");
        let (status, detail): (String, String) = c
            .query_row(
                "SELECT status, detail FROM notifications WHERE id = 'n-1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), detail.as_str()), ("suppressed", "no consent"));
    }

    #[tokio::test]
    async fn a_staged_send_is_queued_once_and_one_no_longer_pending_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path) = fresh(dir.path()).await;
        {
            let mut writer = SqliteWriter::open(&path, None).unwrap();
            let c = writer.connection();
            pending_notification(c, "n-1");
            pending_notification(c, "n-2");
            c.execute(
                "UPDATE notifications SET status = 'cancelled' WHERE id = 'n-2'",
                [],
            )
            .unwrap();
        }
        let send = |id: &str| Resolved {
            id: id.into(),
            channel: "sms".into(),
            address: "+84900000001".into(),
            language: "vi".into(),
            timezone: None,
            title: None,
            body: "Nhắc lịch".into(),
        };
        let sends = [(send("n-1"), 0), (send("n-2"), 0)];
        let row = |id: &str| ("send.sms".to_string(), id.to_string(), "{}".to_string(), 0);
        store
            .stage_and_enqueue(&sends, &[row("n-1"), row("n-2")])
            .await
            .unwrap();
        let counts = store.notification_counts().await.unwrap();
        assert!(counts.contains(&("queued".to_string(), 1)), "{counts:?}");
        assert!(counts.contains(&("cancelled".to_string(), 1)), "{counts:?}");
        assert_eq!(
            store.queue_depth("send.sms").await.unwrap(),
            1,
            "only the pending send is queued"
        );
    }
}
