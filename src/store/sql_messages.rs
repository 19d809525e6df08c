//! The message log's search and scans, written once for both backends (see `sql.rs`).
//!
//! A search (`GET /api/v1/messages`) answers one page, newest first, and continues after the
//! last id it gave (keyset paging: no OFFSET, so page 1,000 costs what page 1 does). Each filter
//! has an index that yields its rows already in the answer's order, so a page stops after
//! `limit` rows whatever the log holds (`migrations/*/…_message_search.sql`):
//!
//! | filter | walks |
//! |---|---|
//! | none, or `status=processed` | the primary key, backwards |
//! | `status` error, unmapped, duplicate, received | `messages_status (status, id)`; other filters but control id and patient are checked on its rows |
//! | `connector` | `messages_connector (connector, id)` |
//! | `type=ADT^A01` / `type=ADT` | `messages_type (message_type, id)` / `messages_code (message_code, id)` |
//! | `control_id` | `messages_dedupe (control_id, …)`, then a sort of its few rows |
//! | a patient identifier | the person's ids, then `messages_person`, then a sort of their rows |
//! | a time range | `messages_received (received_at, id)`, backwards; the answer is then in receive-time order |
//!
//! Filters combine with AND; the planner walks the most selective index and checks the others
//! on each row. A scan ([`MessageScan`]) walks forwards by id, for replay and reprocess.

/// The columns of a [`MessageSummary`](super::MessageSummary).
pub const SUMMARY_COLUMNS: &str = "id, connector, origin, received_at, sender, control_id, message_type, status, \
     error, warnings, mapping, person_id, duplicate_of, CAST(length(raw) AS BIGINT) AS size_bytes, body_pruned_at, \
     reprocessed_at, reprocess_count";

/// How many persons a patient identifier may resolve to (with the persons merged into them).
pub const MAX_PERSONS: usize = 100;

/// The values a type filter compares with: as given, and in upper case (HL7 codes are upper
/// case; FHIR resource types are not).
pub fn type_values(t: &str) -> Vec<String> {
    let upper = t.to_uppercase();
    if upper == t {
        vec![upper]
    } else {
        vec![t.to_string(), upper]
    }
}

/// Expands the message-log queries for a backend (after `store_queries!`, whose
/// `summary_from_row` they use).
macro_rules! message_queries {
    ($store:ident, $db:ty) => {
        impl $store {
            /// One page of the message log (see the module's table of filters and indexes).
            pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageSummary>, StoreError> {
                use super::sql_messages::{SUMMARY_COLUMNS, type_values};
                if f.person_ids.as_ref().is_some_and(Vec::is_empty) {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {SUMMARY_COLUMNS} FROM messages WHERE 1 = 1"
                ));
                if let Some(status) = f.status {
                    // A literal from a closed set, so that the planner can use the partial status index.
                    q.push(format_args!(" AND status = '{}'", status.as_str()));
                }
                // Any status but `processed` is rare: its partial index is walked and the
                // connector, type and time are checked on its rows, written so that no index can
                // serve them (`col || ''`). Otherwise a planner without statistics may walk the
                // connector's index instead, through a hundred thousand rows to find a few errors.
                let sparse = f.status.is_some_and(|s| s != MessageStatus::Processed);
                if sparse {
                    // The partial index's own condition, said outright: SQLite uses a partial
                    // index only when the query states its WHERE (it does not infer it from
                    // `status = 'error'`).
                    q.push(" AND status <> 'processed'");
                }
                let col = |name: &str| if sparse { format!("{name} || ''") } else { name.to_string() };
                if let Some(c) = &f.connector {
                    q.push(format_args!(" AND {} = ", col("connector"))).push_bind(c.clone());
                }
                if let Some(t) = &f.message_type {
                    let column = col(if t.contains('^') { "message_type" } else { "message_code" });
                    q.push(format_args!(" AND {column} IN ("));
                    let mut values = q.separated(", ");
                    for v in type_values(t) {
                        values.push_bind(v);
                    }
                    q.push(")");
                }
                if let Some(c) = &f.control_id {
                    q.push(" AND control_id = ").push_bind(c.clone());
                }
                if let Some(persons) = &f.person_ids {
                    q.push(" AND person_id IN (");
                    let mut values = q.separated(", ");
                    for p in persons {
                        values.push_bind(p.clone());
                    }
                    q.push(")");
                }
                if let Some(from) = &f.received_from {
                    q.push(format_args!(" AND {} >= ", col("received_at"))).push_bind(from.clone());
                }
                if let Some(to) = &f.received_to {
                    q.push(format_args!(" AND {} < ", col("received_at"))).push_bind(to.clone());
                }
                if f.by_time() {
                    if let Some(before) = f.before_id {
                        q.push(" AND (received_at, id) < (SELECT received_at, id FROM messages WHERE id = ")
                            .push_bind(before)
                            .push(")");
                    }
                    q.push(" ORDER BY received_at DESC, id DESC LIMIT ");
                } else {
                    if let Some(before) = f.before_id {
                        q.push(" AND id < ").push_bind(before);
                    }
                    q.push(" ORDER BY id DESC LIMIT ");
                }
                q.push_bind(f.limit);
                let rows = q.build().fetch_all(&self.pool).await?;
                rows.iter().map(summary_from_row).collect()
            }

            /// The persons holding this identifier value (and system, when given), with the
            /// persons merged into them, at most `MAX_PERSONS`: whose messages a search by
            /// patient identifier shows.
            pub async fn persons_by_identifier(
                &self,
                value: &str,
                system: Option<&str>,
            ) -> Result<Vec<String>, StoreError> {
                use super::sql_messages::MAX_PERSONS;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT DISTINCT person_id FROM identifiers WHERE value = ",
                );
                q.push_bind(value.to_string());
                if let Some(system) = system {
                    q.push(" AND system = ").push_bind(system.to_string());
                }
                q.push(" LIMIT ").push_bind(MAX_PERSONS as i64);
                let mut persons: Vec<String> = q.build_query_scalar().fetch_all(&self.pool).await?;
                // Persons merged into them (and into those), level by level.
                let mut level = persons.clone();
                while !level.is_empty() && persons.len() < MAX_PERSONS {
                    let mut q = sqlx::QueryBuilder::<$db>::new("SELECT id FROM persons WHERE merged_into IN (");
                    let mut values = q.separated(", ");
                    for p in &level {
                        values.push_bind(p.clone());
                    }
                    q.push(")");
                    let found: Vec<String> = q.build_query_scalar().fetch_all(&self.pool).await?;
                    level = found.into_iter().filter(|p| !persons.contains(p)).collect();
                    persons.extend(level.iter().cloned());
                }
                persons.truncate(MAX_PERSONS);
                Ok(persons)
            }

            /// One page of stored messages with their bytes, oldest first (see [`MessageScan`]).
            pub async fn scan_messages(&self, scan: &MessageScan) -> Result<Vec<StoredMessage>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, connector, origin, received_at, message_type, status, mapping, raw, body_pruned_at \
                     FROM messages WHERE id > ",
                );
                q.push_bind(scan.after_id);
                if scan.skip_duplicates {
                    q.push(" AND status <> 'duplicate'");
                }
                if !scan.statuses.is_empty() {
                    let listed: Vec<String> = scan.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
                    // Literals from a closed set (the partial status index applies).
                    q.push(format_args!(" AND status IN ({})", listed.join(", ")));
                    if !scan.statuses.contains(&MessageStatus::Processed) {
                        // So that SQLite may walk the partial status index (see `messages`).
                        q.push(" AND status <> 'processed'");
                    }
                }
                if !scan.ids.is_empty() {
                    q.push(" AND id IN (");
                    let mut values = q.separated(", ");
                    for id in &scan.ids {
                        values.push_bind(*id);
                    }
                    q.push(")");
                }
                if let Some(from) = &scan.received_from {
                    q.push(" AND received_at >= ").push_bind(from.clone());
                }
                if let Some(to) = &scan.received_to {
                    q.push(" AND received_at < ").push_bind(to.clone());
                }
                if let Some(c) = &scan.connector {
                    q.push(" AND connector = ").push_bind(c.clone());
                }
                if let Some(types) = &scan.types {
                    // `1 = 0 OR …`: an empty filter keeps nothing.
                    q.push(" AND (1 = 0");
                    for t in &types.equal {
                        q.push(" OR UPPER(message_type) = ").push_bind(t.to_uppercase());
                    }
                    for p in &types.prefixes {
                        let pattern = format!("{}%", like_escape(&p.to_uppercase()));
                        q.push(" OR UPPER(message_type) LIKE ").push_bind(pattern).push(" ESCAPE '\\'");
                    }
                    for c in &types.connectors {
                        q.push(" OR connector = ").push_bind(c.clone());
                    }
                    q.push(")");
                }
                q.push(" ORDER BY id LIMIT ").push_bind(scan.limit);
                let rows = q.build().fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map(|r| Ok(StoredMessage {
                        id: r.get("id"),
                        connector: r.get("connector"),
                        origin: r.get("origin"),
                        received_at: r.get("received_at"),
                        message_type: r.get("message_type"),
                        // The schema's CHECK admits only the statuses `parse` knows.
                        status: MessageStatus::parse(r.get("status")).unwrap_or(MessageStatus::Received),
                        mapping: r.get("mapping"),
                        raw: self.open_raw(r.get("raw"))?,
                        body_pruned_at: r.get("body_pruned_at"),
                    }))
                    .collect()
            }
        }
    };
}

pub(crate) use message_queries;
