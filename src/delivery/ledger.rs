//! The workers' group commit: every claim and every recorded outcome of a channel's sends in
//! flight goes through one task that writes whatever has gathered in one transaction. Each
//! worker still waits for its own claim before calling the provider and for its own record
//! before settling the queue message; dozens of sends share a commit instead of paying one
//! each (on SQLite with `synchronous = full`, a commit is a disk flush).

use tokio::sync::{mpsc, oneshot};

use crate::store::{AttemptOutcome, Claim, SendClaim, Store};

/// Operations per transaction, at most.
const MAX_GROUP: usize = 256;

pub enum Op {
    Claim(SendClaim, oneshot::Sender<Result<Claim, String>>),
    Record(AttemptOutcome, oneshot::Sender<Result<(), String>>),
}

/// Where a worker claims sends and records outcomes.
#[derive(Clone)]
pub enum Ledger {
    /// Each operation in its own transaction.
    Direct(Store),
    /// Grouped by a writer task.
    Grouped(mpsc::Sender<Op>),
}

impl Ledger {
    /// Starts the writer task; it ends when every clone of the ledger is dropped.
    pub fn grouped(store: Store) -> Ledger {
        let (tx, mut rx) = mpsc::channel::<Op>(MAX_GROUP * 4);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut ops = vec![first];
                while ops.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(op) => ops.push(op),
                        Err(_) => break,
                    }
                }
                let mut claims = Vec::new();
                let mut claim_replies = Vec::new();
                let mut outcomes = Vec::new();
                let mut record_replies = Vec::new();
                for op in ops {
                    match op {
                        Op::Claim(c, reply) => {
                            claims.push(c);
                            claim_replies.push(reply);
                        }
                        Op::Record(o, reply) => {
                            outcomes.push(o);
                            record_replies.push(reply);
                        }
                    }
                }
                match store.send_ops(&claims, &outcomes).await {
                    Ok(answers) => {
                        for (reply, answer) in claim_replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                        for reply in record_replies {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        for reply in claim_replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                        for reply in record_replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Ledger::Grouped(tx)
    }

    pub async fn claim(&self, c: SendClaim) -> Result<Claim, String> {
        match self {
            Ledger::Direct(store) => store
                .claim_send(&c.id, &c.channel, c.now_ms, c.lease_ms)
                .await
                .map_err(|e| e.to_string()),
            Ledger::Grouped(tx) => {
                let (reply, answer) = oneshot::channel();
                tx.send(Op::Claim(c, reply))
                    .await
                    .map_err(|_| "the ledger stopped".to_string())?;
                answer.await.map_err(|_| "the ledger stopped".to_string())?
            }
        }
    }

    pub async fn record(&self, o: AttemptOutcome) -> Result<(), String> {
        match self {
            Ledger::Direct(store) => store.record_attempt(&o).await.map_err(|e| e.to_string()),
            Ledger::Grouped(tx) => {
                let (reply, answer) = oneshot::channel();
                tx.send(Op::Record(o, reply))
                    .await
                    .map_err(|_| "the ledger stopped".to_string())?;
                answer.await.map_err(|_| "the ledger stopped".to_string())?
            }
        }
    }
}
