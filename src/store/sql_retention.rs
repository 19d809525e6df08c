//! Retention of raw message bodies, the same SQL on both backends (see `sql.rs` for the
//! conventions): [`retention_queries!`] expands [`prune_bodies`](PruneReport) for a backend
//! struct with a `pool` field and a `write_gate`.
//!
//! A prune empties `raw` and sets `body_pruned_at`; every other column stays, the content
//! hash with it, so that dedupe (sender, control id, hash) recognises a resend of a pruned
//! message. The log is walked by id, a page of metadata at a time; each page's bodies go in
//! one short `UPDATE … WHERE id IN (…)` of its own, so the write lock is never held for long
//! (on SQLite, in turn with the other pool writers). Nothing here logs message content.

use std::collections::BTreeMap;

use crate::config::Cutoffs;

/// Rows read, and at most bodies emptied, per statement.
pub const PRUNE_PAGE_ROWS: i64 = 500;

/// What to prune: a cut-off per connector, and one for connectors not named (a connector
/// since removed from the configuration).
#[derive(Debug, Clone, Default)]
pub struct PrunePlan {
    /// The time the prune runs as (injected: tests and `carehub prune --now` set it).
    pub now: String,
    pub connectors: BTreeMap<String, Cutoffs>,
    pub others: Cutoffs,
    /// Count only; change nothing.
    pub dry_run: bool,
}

impl PrunePlan {
    pub fn cutoffs(&self, connector: &str) -> &Cutoffs {
        self.connectors.get(connector).unwrap_or(&self.others)
    }

    /// The latest cut-off of any connector and status: nothing received after it can go.
    pub fn latest(&self) -> Option<jiff::Timestamp> {
        self.connectors
            .values()
            .chain(std::iter::once(&self.others))
            .flat_map(|c| [c.processed, c.error])
            .flatten()
            .max()
    }

    /// Whether a message of this connector and status, received at `received_at` (RFC 3339),
    /// is past its time. A time that does not read is kept.
    pub fn expired(&self, connector: &str, status: &str, received_at: &str) -> bool {
        let Some(cutoff) = self.cutoffs(connector).for_status(status) else {
            return false;
        };
        received_at.parse::<jiff::Timestamp>().is_ok_and(|at| at < cutoff)
    }
}

/// Bodies pruned (or, in a dry run, that would be) of one connector and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneCount {
    pub messages: u64,
    /// Their raw bytes, now free (reused by the database; see docs/operations.md on VACUUM).
    pub bytes: u64,
}

/// What a prune did or would do, by (connector, status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub dry_run: bool,
    pub counts: BTreeMap<(String, String), PruneCount>,
}

impl PruneReport {
    /// Every connector's messages and bytes added up.
    pub fn total(&self) -> PruneCount {
        self.counts
            .values()
            .fold(PruneCount::default(), |a, c| PruneCount {
                messages: a.messages + c.messages,
                bytes: a.bytes + c.bytes,
            })
    }
}

/// Expands the retention queries for a backend (`$store` with `pool` and `write_gate()`,
/// `$db` its sqlx database).
macro_rules! retention_queries {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Empties the raw bodies the plan says are past their time (see `sql_retention.rs`).
            pub async fn prune_bodies(&self, plan: &PrunePlan) -> Result<PruneReport, StoreError> {
                let mut report = PruneReport {
                    dry_run: plan.dry_run,
                    counts: Default::default(),
                };
                let Some(latest) = plan.latest() else {
                    return Ok(report);
                };
                let latest = latest.to_string();
                let mut after = 0_i64;
                loop {
                    let rows = sqlx::query(
                        "SELECT id, connector, status, received_at, CAST(length(raw) AS BIGINT) AS size_bytes
                         FROM messages WHERE id > $1 AND body_pruned_at IS NULL AND received_at < $2
                         ORDER BY id LIMIT $3",
                    )
                    .bind(after)
                    .bind(&latest)
                    .bind($crate::store::PRUNE_PAGE_ROWS)
                    .fetch_all(&self.pool)
                    .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.get("id");
                    let mut ids = Vec::new();
                    for r in &rows {
                        let (connector, status): (String, String) = (r.get("connector"), r.get("status"));
                        if !plan.expired(&connector, &status, r.get("received_at")) {
                            continue;
                        }
                        ids.push(r.get::<i64, _>("id"));
                        let bytes: i64 = r.get("size_bytes");
                        let count = report.counts.entry((connector, status)).or_default();
                        count.messages += 1;
                        count.bytes += bytes.max(0) as u64;
                    }
                    if !plan.dry_run && !ids.is_empty() {
                        // One writer at a time, in turn (SQLite; see `write_gate`).
                        let _turn = self.write_gate().await;
                        let mut q = sqlx::QueryBuilder::<$db>::new("UPDATE messages SET raw = ");
                        q.push_bind(Vec::<u8>::new())
                            .push(", body_pruned_at = ")
                            .push_bind(plan.now.clone())
                            .push(" WHERE body_pruned_at IS NULL AND id IN (");
                        let mut sep = q.separated(", ");
                        for id in &ids {
                            sep.push_bind(*id);
                        }
                        q.push(")");
                        q.build().execute(&self.pool).await?;
                    }
                    if (rows.len() as i64) < $crate::store::PRUNE_PAGE_ROWS {
                        break;
                    }
                }
                Ok(report)
            }
        }
    };
}

pub(crate) use retention_queries;
