//! Queries of operations — the gauges `/metrics` reads at scrape time, the alerts' state, the
//! readiness probe's write — both SQL backends share, written once (see `sql.rs` for the
//! conventions). Every query here is cheap: counts over indexed columns and small tables.

/// What `/metrics` and the alerts read from the store, as stored.
#[derive(Debug, Clone, Default)]
pub struct OpsCounts {
    /// Notifications by status.
    pub outbox: Vec<(String, i64)>,
    /// The earliest `due_at` (epoch ms) of a due notification still `pending`.
    pub oldest_pending_due_ms: Option<i64>,
    /// The earliest `published_at` of a notification handed to the queue and not yet sent.
    pub oldest_queued_at: Option<String>,
    /// Open review items.
    pub review_open: i64,
    /// Pull cursors: connector, resource type, cursor.
    pub cursors: Vec<(String, String, String)>,
}

/// One alert's row (`alerts` table).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AlertRow {
    pub key: String,
    pub name: String,
    pub kind: String,
    /// `firing` or `resolved`.
    pub state: String,
    pub summary: String,
    pub fired_at: String,
    pub resolved_at: Option<String>,
    pub last_sent_at: Option<String>,
    /// The current firing was sent to ops.
    pub announced: bool,
    #[serde(skip)]
    pub version: i64,
}

/// Expands the operations queries for a backend (`$store` with `pool: sqlx::Pool<_>`, `$row`
/// its row type).
macro_rules! ops_queries {
    ($store:ident, $row:ty) => {
        impl $store {
            /// The store's side of `/metrics` and of the alerts; `now_ms` is the caller's clock.
            pub async fn ops_counts(&self, now_ms: i64) -> Result<super::sql_ops::OpsCounts, StoreError> {
                let outbox: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM notifications GROUP BY status ORDER BY status")
                        .fetch_all(&self.pool)
                        .await?;
                let oldest_pending_due_ms: Option<i64> = sqlx::query_scalar(
                    "SELECT MIN(due_at) FROM notifications WHERE status = 'pending' AND due_at <= $1",
                )
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await?;
                let oldest_queued_at: Option<String> = sqlx::query_scalar(
                    "SELECT MIN(published_at) FROM notifications WHERE status = 'queued'",
                )
                .fetch_one(&self.pool)
                .await?;
                let review_open: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM review_items WHERE status = 'open'")
                        .fetch_one(&self.pool)
                        .await?;
                let cursors: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT connector, resource_type, cursor FROM connector_cursors ORDER BY connector, resource_type",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(super::sql_ops::OpsCounts {
                    outbox,
                    oldest_pending_due_ms,
                    oldest_queued_at,
                    review_open,
                    cursors,
                })
            }

            /// Writes the readiness row: the store takes writes.
            pub async fn probe_write(&self) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO readiness_probe (id, at) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                )
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// Every alert row, firing first.
            pub async fn alert_rows(&self) -> Result<Vec<super::sql_ops::AlertRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT key, name, kind, state, summary, fired_at, resolved_at, last_sent_at, announced, version
                     FROM alerts ORDER BY state, fired_at DESC",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r: &$row| super::sql_ops::AlertRow {
                        key: r.get("key"),
                        name: r.get("name"),
                        kind: r.get("kind"),
                        state: r.get("state"),
                        summary: r.get("summary"),
                        fired_at: r.get("fired_at"),
                        resolved_at: r.get("resolved_at"),
                        last_sent_at: r.get("last_sent_at"),
                        announced: r.get::<i64, _>("announced") != 0,
                        version: r.get("version"),
                    })
                    .collect())
            }

            /// Writes `row` over the stored row of its key if that one is still at `expected`
            /// (`None`: there is none yet). True when this write took: the caller, and no other
            /// replica, acts on the change.
            pub async fn alert_swap(
                &self,
                row: &super::sql_ops::AlertRow,
                expected: Option<i64>,
            ) -> Result<bool, StoreError> {
                let sql = match expected {
                    None => {
                        "INSERT INTO alerts (key, name, kind, state, summary, fired_at, resolved_at, last_sent_at, announced, updated_at, version)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1)
                         ON CONFLICT (key) DO NOTHING"
                    }
                    Some(_) => {
                        "UPDATE alerts SET name = $2, kind = $3, state = $4, summary = $5, fired_at = $6, resolved_at = $7,
                           last_sent_at = $8, announced = $9, updated_at = $10, version = version + 1
                         WHERE key = $1 AND version = $11"
                    }
                };
                let mut query = sqlx::query(sql)
                    .bind(&row.key)
                    .bind(&row.name)
                    .bind(&row.kind)
                    .bind(&row.state)
                    .bind(&row.summary)
                    .bind(&row.fired_at)
                    .bind(&row.resolved_at)
                    .bind(&row.last_sent_at)
                    .bind(i64::from(row.announced))
                    .bind(now());
                if let Some(version) = expected {
                    query = query.bind(version);
                }
                let done = query.execute(&self.pool).await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use ops_queries;
