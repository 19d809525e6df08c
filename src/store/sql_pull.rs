//! Queries of pull connectors — cursors and run history — both SQL backends share, written
//! once (see `sql.rs` for the conventions). [`pull_queries!`] expands them for a backend struct
//! that has a `pool` field; it also defines `run_from_row`, which `connectors()` uses.

/// Expands the pull-connector queries for a backend (`$store` with `pool: sqlx::Pool<_>`,
/// `$row` its row type).
macro_rules! pull_queries {
    ($store:ident, $row:ty) => {
        impl $store {
            /// Where a pull connector stands: resource type → cursor.
            pub async fn cursors(&self, connector: &str) -> Result<Vec<(String, String)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT resource_type, cursor FROM connector_cursors WHERE connector = $1 ORDER BY resource_type",
                )
                .bind(connector)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(|r| (r.get("resource_type"), r.get("cursor"))).collect())
            }

            /// Sets a pull cursor outside a page (after a history traversal, whose pages come
            /// newest first: the cursor may only move once every page is stored).
            pub async fn set_cursor(&self, c: &CursorUpdate) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO connector_cursors (connector, resource_type, cursor, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (connector, resource_type) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                )
                .bind(&c.connector)
                .bind(&c.resource_type)
                .bind(&c.value)
                .bind(now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// Opens a run (any run of this connector still marked running was cut off by a stop).
            pub async fn start_run(&self, connector: &str, cursor_before: &serde_json::Value) -> Result<i64, StoreError> {
                let at = now();
                sqlx::query("UPDATE connector_runs SET outcome = 'interrupted', ended_at = $1 WHERE connector = $2 AND outcome = 'running'")
                    .bind(&at)
                    .bind(connector)
                    .execute(&self.pool)
                    .await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO connector_runs (connector, started_at, outcome, cursor_before) VALUES ($1, $2, 'running', $3) RETURNING id",
                )
                .bind(connector)
                .bind(&at)
                .bind(cursor_before.to_string())
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            /// Records a run's progress or its end (`outcome` other than `running`).
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
                let ended = (outcome != "running").then(now);
                sqlx::query(
                    "UPDATE connector_runs SET outcome = $1, pages = $2, resources = $3, errors = $4, cursor_after = $5,
                       detail = $6, ended_at = $7 WHERE id = $8",
                )
                .bind(outcome)
                .bind(pages)
                .bind(resources)
                .bind(errors)
                .bind(cursor_after.to_string())
                .bind(detail)
                .bind(ended)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// A connector's latest runs, newest first.
            pub async fn runs(&self, connector: &str, limit: i64) -> Result<Vec<RunView>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, connector, started_at, ended_at, outcome, pages, resources, errors, cursor_before,
                       cursor_after, detail FROM connector_runs WHERE connector = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(connector)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(run_from_row).collect()
            }
        }

        fn run_from_row(r: &$row) -> Result<RunView, StoreError> {
            let json = |col: &str| -> Result<Option<serde_json::Value>, StoreError> {
                Ok(match r.get::<Option<String>, _>(col) {
                    Some(t) => Some(serde_json::from_str(&t)?),
                    None => None,
                })
            };
            Ok(RunView {
                id: r.get("id"),
                connector: r.get("connector"),
                started_at: r.get("started_at"),
                ended_at: r.get("ended_at"),
                outcome: r.get("outcome"),
                pages: r.get("pages"),
                resources: r.get("resources"),
                errors: r.get("errors"),
                cursor_before: json("cursor_before")?,
                cursor_after: json("cursor_after")?,
                detail: r.get("detail"),
            })
        }
    };
}

pub(crate) use pull_queries;
