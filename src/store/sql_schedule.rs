//! Queries of the notification scheduler — the facts time-based rules fire on (upcoming
//! appointments, birthdays, last visits) and the rows they insert — written once for both
//! backends (see `sql.rs` for the conventions).

/// Expands the scheduler's queries for a backend (`$store` with `pool`).
macro_rules! schedule_queries {
    ($store:ident) => {
        impl $store {
            /// Notifications the scheduler makes, each once (a known de-duplication key is skipped).
            pub async fn insert_notifications(&self, rows: &[crate::rules::NotificationRow]) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin().await?;
                let mut inserted = 0;
                for n in rows {
                    inserted += sqlx::query(
                        "INSERT INTO notifications (id, rule, category, person_id, subject, dedupe_key, template, channels,
                           context, cause, status, due_at, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $12)
                         ON CONFLICT (dedupe_key) DO UPDATE SET status = 'pending', due_at = excluded.due_at,
                           context = excluded.context, cause = excluded.cause, detail = 'revived: the journey started again',
                           channel = NULL, address = NULL, language = NULL, title = NULL, body = NULL,
                           updated_at = excluded.updated_at
                         WHERE notifications.status = 'cancelled'",
                    )
                    .bind(&n.id)
                    .bind(&n.rule)
                    .bind(n.category)
                    .bind(&n.person_id)
                    .bind(&n.subject)
                    .bind(&n.dedupe_key)
                    .bind(&n.template)
                    .bind(&n.channels)
                    .bind(&n.context)
                    .bind(&n.cause)
                    .bind(n.due_at)
                    .bind(&n.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(inserted)
            }

            /// Booked appointments starting in [from, to) (UTC sort keys).
            pub async fn upcoming_appointments(&self, from: &str, to: &str) -> Result<Vec<ScheduledFact>, StoreError> {
                let rows = sqlx::query(
                    "SELECT person_id, kind, source_system, record_key, sort_at, data FROM clinical_records
                     WHERE kind = 'appointment' AND sort_at >= $1 AND sort_at < $2 AND status = 'booked' AND person_id IS NOT NULL",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(ScheduledFact {
                            person_id: r.get("person_id"),
                            subject: Some(format!(
                                "{}|{}|{}",
                                r.get::<&str, _>("kind"),
                                r.get::<&str, _>("source_system"),
                                r.get::<&str, _>("record_key")
                            )),
                            sort_at: r.get("sort_at"),
                            data: serde_json::from_str(r.get::<&str, _>("data"))?,
                        })
                    })
                    .collect()
            }

            /// Whether a person has a booked appointment at or after `from`.
            pub async fn has_booked_appointment(&self, person: &str, from: &str) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    concat!(
                        "WITH RECURSIVE family(id) AS (SELECT CAST($1 AS TEXT) UNION SELECT p.id FROM persons p JOIN family f ON p.merged_into = f.id) ",
                        "SELECT COUNT(*) FROM clinical_records WHERE kind = 'appointment' AND person_id IN (SELECT id FROM family)
                           AND status = 'booked' AND sort_at >= $2"
                    ),
                )
                .bind(person)
                .bind(from)
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            /// Persons (not merged away) born on this month and day (`MM-DD`).
            pub async fn birthdays(&self, month_day: &str) -> Result<Vec<ScheduledFact>, StoreError> {
                // The golden record is JSON text written by serde (`"birth_date":"1985-03-07"`).
                let pattern = format!("%\"birth_date\":\"____-{month_day}\"%");
                let ids: Vec<(String, Option<String>)> = sqlx::query_as(
                    "SELECT id, profile FROM persons WHERE merged_into IS NULL AND profile LIKE $1",
                )
                .bind(pattern)
                .fetch_all(&self.pool)
                .await?;
                Ok(ids
                    .into_iter()
                    .map(|(id, _)| ScheduledFact {
                        person_id: id,
                        subject: None,
                        sort_at: None,
                        data: serde_json::Value::Null,
                    })
                    .collect())
            }

            /// Persons whose latest visit falls in [from, to) (UTC sort keys).
            pub async fn last_visits_between(&self, from: &str, to: &str) -> Result<Vec<ScheduledFact>, StoreError> {
                let rows = sqlx::query(
                    // Visits count for the person they belong to now: a person merged away
                    // lends their visits to the survivor (one merge deep).
                    "SELECT COALESCE(p.merged_into, c.person_id) AS person_id, MAX(c.sort_at) AS last
                     FROM clinical_records c LEFT JOIN persons p ON p.id = c.person_id
                     WHERE c.kind = 'encounter' AND c.person_id IS NOT NULL
                       AND (c.status IS NULL OR c.status NOT IN ('cancelled', 'entered-in-error', 'planned'))
                     GROUP BY COALESCE(p.merged_into, c.person_id)
                     HAVING MAX(c.sort_at) >= $1 AND MAX(c.sort_at) < $2",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let last: Option<String> = r.get("last");
                        ScheduledFact {
                            person_id: r.get("person_id"),
                            subject: last.as_ref().map(|l| format!("visit|{l}")),
                            data: serde_json::json!({"last_visit": last}),
                            sort_at: last,
                        }
                    })
                    .collect())
            }

            /// When a scheduled rule last ran.
            pub async fn rule_last_run(&self, rule: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT last_run_at FROM rule_runs WHERE rule = $1")
                    .bind(rule)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            pub async fn set_rule_run(&self, rule: &str, at: &str, created: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO rule_runs (rule, last_run_at, created) VALUES ($1, $2, $3)
                     ON CONFLICT (rule) DO UPDATE SET last_run_at = excluded.last_run_at, created = rule_runs.created + excluded.created",
                )
                .bind(rule)
                .bind(at)
                .bind(created)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

        }
    };
}

pub(crate) use schedule_queries;
