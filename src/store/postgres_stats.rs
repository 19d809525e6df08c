//! Fresh planner statistics for the ingest tables, whatever the server's autovacuum does.
//!
//! PostgreSQL plans a prepared statement once per connection and keeps that plan until the
//! statistics of its tables change. A hub started on an empty database prepares its ingest
//! look-ups on empty tables; where autovacuum is off, or before it comes round (a minute by
//! default), those plans keep scanning whole tables as the tables grow. Measured on the local
//! server with autovacuum off: the ingest look-up took 4–15 ms at 16,000 persons, and MLLP
//! ingest fell to 300–660 messages/s.
//!
//! So, at most once a second and after a batch, the store asks which ingest tables changed
//! by more than autovacuum's own default threshold (50 rows + 10 %) since their last analysis,
//! and analyses those in the background. ANALYZE takes no lock that blocks inserts or reads;
//! the plans it invalidates are made again on their next use.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;

/// The tables whose look-ups run on every ingest batch.
const TABLES: [&str; 7] = [
    "messages",
    "persons",
    "identifiers",
    "source_records",
    "match_keys",
    "clinical_records",
    "notifications",
];

/// How often the check runs at most: a point query on the statistics views. A fresh store
/// grows fast at first, and a plan made on nearly empty tables costs most then.
const EVERY: Duration = Duration::from_secs(1);

/// How long to leave it after a check failed (a role that may not analyse, a server in trouble).
const AFTER_FAILURE: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct Statistics {
    /// When the next check may start; `None` while one runs.
    next_check: Arc<Mutex<Option<Instant>>>,
}

impl Statistics {
    pub fn new() -> Statistics {
        Statistics {
            next_check: Arc::new(Mutex::new(Some(Instant::now()))),
        }
    }

    /// After a committed batch: starts a check in the background when none runs and the last
    /// is old enough (one at a time, so a slow ANALYZE never piles up on the pool). Call it
    /// within the runtime.
    pub fn after_batch(&self, pool: &PgPool) {
        {
            let mut next = self.next_check.lock().unwrap_or_else(|p| p.into_inner());
            match *next {
                Some(at) if Instant::now() >= at => *next = None,
                _ => return,
            }
        }
        let pool = pool.clone();
        let next_check = self.next_check.clone();
        tokio::spawn(async move {
            let wait = match refresh(&pool).await {
                Ok(_) => EVERY,
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the planner's statistics failed; ingest look-ups may slow down (trying again in 5 minutes)");
                    AFTER_FAILURE
                }
            };
            *next_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + wait);
        });
    }
}

/// Analyses the ingest tables that changed enough since their last analysis; returns them.
pub async fn refresh(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND relname = ANY($1)
           AND n_mod_since_analyze > 50 + 0.1 * n_live_tup",
    )
    .bind(TABLES)
    .fetch_all(pool)
    .await?;
    for table in &stale {
        // The name is one of `TABLES`, as the server spelled it back.
        if TABLES.contains(&table.as_str()) {
            // SKIP_LOCKED: a table another session is analysing or altering is left for next time.
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE (SKIP_LOCKED) \"{table}\"")))
                .execute(pool)
                .await?;
        }
    }
    if !stale.is_empty() {
        tracing::debug!(tables = ?stale, "planner statistics refreshed");
    }
    Ok(stale)
}
