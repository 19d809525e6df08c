//! Queries of access control — API tokens and the audit log — both SQL backends share, written
//! once (see `sql.rs` for the conventions). [`access_queries!`] expands them for a backend.
//!
//! Tokens are stored as the SHA-256 of their secret only. Audit rows are appended in groups,
//! each group in one transaction under the writer's lock — on SQLite through the writer
//! connection (`sqlite_audit.rs`), on PostgreSQL under an advisory lock (`postgres.rs`) — so
//! that every row's id and chained hash follow the row before it even with several replicas.

/// A stored API token (never its secret).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl TokenRecord {
    /// Neither revoked nor expired at `now` (RFC 3339).
    pub fn is_active(&self, now: &jiff::Timestamp) -> bool {
        self.revoked_at.is_none()
            && self
                .expires_at
                .as_deref()
                .and_then(|e| e.parse::<jiff::Timestamp>().ok())
                .is_none_or(|e| e > *now)
    }
}

/// Which audit rows to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub person: Option<String>,
    pub subject: Option<String>,
    /// A route or action, matched as a prefix (`GET /api/v1/patients`).
    pub action: Option<String>,
    /// RFC 3339 bounds on `at`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Keyset paging: rows with a smaller id.
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Expands the access queries for a backend (`$store` with `pool: sqlx::Pool<$db>`).
macro_rules! access_queries {
    ($store:ident, $row:ty, $begin:expr, $lock:expr) => {
        impl $store {
            /// Appends `entries` to the audit log through the pool, in one transaction under the
            /// backend's lock (`$begin`, `$lock`), each chained to the one before it; their ids.
            /// PostgreSQL appends this way always; SQLite when no writer thread should start (the
            /// command line: a process that exits right after must leave no thread mid-write).
            pub async fn append_audit_pooled(&self, entries: &[crate::audit::AuditEntry]) -> Result<Vec<i64>, StoreError> {
                if entries.is_empty() {
                    return Ok(Vec::new());
                }
                let _turn = self.write_gate().await;
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await?;
                sqlx::query($lock)
                    .execute(&mut *tx)
                    .await?;
                let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
                let (mut id, mut prev): (i64, String) = match last {
                    Some(r) => (r.get("id"), r.get("hash")),
                    None => (0, crate::audit::GENESIS.to_string()),
                };
                let mut ids = Vec::with_capacity(entries.len());
                for e in entries {
                    id += 1;
                    let hash = crate::audit::chain_hash(&prev, id, e);
                    sqlx::query(
                            "INSERT INTO audit_log (id, at, subject, role, action, status, persons, person_count, purpose, client, prev_hash, hash)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        )
                        .bind(id)
                        .bind(&e.at)
                        .bind(&e.subject)
                        .bind(&e.role)
                        .bind(&e.action)
                        .bind(e.status)
                        .bind(serde_json::to_string(&e.persons)?)
                        .bind(e.person_count)
                        .bind(&e.purpose)
                        .bind(&e.client)
                        .bind(&prev)
                        .bind(&hash)
                        .execute(&mut *tx)
                        .await?;
                    let mut persons: Vec<&String> = e.persons.iter().collect();
                    persons.sort();
                    persons.dedup();
                    for p in persons {
                        sqlx::query("INSERT INTO audit_persons (person_id, audit_id) VALUES ($1, $2)")
                            .bind(p)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    ids.push(id);
                    prev = hash;
                }
                tx.commit().await?;
                Ok(ids)
            }

            pub async fn create_token(
                &self,
                record: &TokenRecord,
                token_hash: &str,
            ) -> Result<(), StoreError> {
                let _turn = self.write_gate().await;
                sqlx::query(
                    "INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&record.id)
                .bind(&record.name)
                .bind(&record.role)
                .bind(token_hash)
                .bind(&record.created_at)
                .bind(&record.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, name, role, created_at, expires_at, revoked_at FROM api_tokens ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(token_from_row).collect())
            }

            /// The token whose secret hashes to `token_hash`, revoked or expired ones included.
            pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, name, role, created_at, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map(token_from_row))
            }

            /// Revokes a token by id or name; returns how many were revoked.
            pub async fn revoke_token(&self, id_or_name: &str) -> Result<u64, StoreError> {
                let _turn = self.write_gate().await;
                let done = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE (id = $2 OR name = $2) AND revoked_at IS NULL",
                )
                .bind(crate::store::sql::now())
                .bind(id_or_name)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            /// Audit rows matching `filter`, newest first.
            pub async fn audit_rows(&self, f: &AuditFilter) -> Result<Vec<crate::audit::AuditRow>, StoreError> {
                let mut sql = String::from(
                    "SELECT id, at, subject, role, action, status, persons, person_count, purpose, client, prev_hash, hash FROM audit_log WHERE 1 = 1",
                );
                let mut n = 0;
                let mut arg = |sql: &mut String, clause: &str| {
                    n += 1;
                    sql.push_str(&clause.replace("$?", &format!("${n}")));
                };
                if f.person.is_some() {
                    arg(&mut sql, " AND id IN (SELECT audit_id FROM audit_persons WHERE person_id = $?)");
                }
                if f.subject.is_some() {
                    arg(&mut sql, " AND subject = $?");
                }
                if f.action.is_some() {
                    arg(&mut sql, " AND action LIKE $? ESCAPE '\\'");
                }
                if f.since.is_some() {
                    arg(&mut sql, " AND at >= $?");
                }
                if f.until.is_some() {
                    arg(&mut sql, " AND at < $?");
                }
                if f.before_id.is_some() {
                    arg(&mut sql, " AND id < $?");
                }
                arg(&mut sql, " ORDER BY id DESC LIMIT $?");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if let Some(p) = &f.person {
                    q = q.bind(p.clone());
                }
                if let Some(s) = &f.subject {
                    q = q.bind(s.clone());
                }
                if let Some(a) = &f.action {
                    q = q.bind(format!("{}%", crate::store::sql::like_escape(a)));
                }
                if let Some(s) = &f.since {
                    q = q.bind(s.clone());
                }
                if let Some(u) = &f.until {
                    q = q.bind(u.clone());
                }
                if let Some(b) = f.before_id {
                    q = q.bind(b);
                }
                let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
                rows.iter().map(audit_from_row).collect()
            }

            /// One page of the audit log in id order, after `after_id` (for `audit verify`).
            pub async fn audit_page(&self, after_id: i64, limit: i64) -> Result<Vec<crate::audit::AuditRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, at, subject, role, action, status, persons, person_count, purpose, client, prev_hash, hash
                     FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(audit_from_row).collect()
            }
        }

        fn token_from_row(r: &$row) -> TokenRecord {
            TokenRecord {
                id: r.get("id"),
                name: r.get("name"),
                role: r.get("role"),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
                revoked_at: r.get("revoked_at"),
            }
        }

        fn audit_from_row(r: &$row) -> Result<crate::audit::AuditRow, StoreError> {
            let persons: String = r.get("persons");
            Ok(crate::audit::AuditRow {
                id: r.get("id"),
                entry: crate::audit::AuditEntry {
                    at: r.get("at"),
                    subject: r.get("subject"),
                    role: r.get("role"),
                    action: r.get("action"),
                    status: r.get("status"),
                    persons: serde_json::from_str(&persons)?,
                    person_count: r.get("person_count"),
                    purpose: r.get("purpose"),
                    client: r.get("client"),
                },
                prev_hash: r.get("prev_hash"),
                hash: r.get("hash"),
            })
        }
    };
}

pub(crate) use access_queries;
