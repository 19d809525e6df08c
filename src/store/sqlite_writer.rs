//! The SQLite ingest writer: one connection of its own, driven synchronously.
//!
//! sqlx runs every SQLite query on a worker thread and wakes the calling task when it is done;
//! a batch transaction of five queries made ten thread hops, and under load each hop waited
//! behind the connection tasks for a turn on the runtime — the single writer spent more time
//! waiting to be scheduled than writing. This connection belongs to one thread (the pipeline's
//! writer thread, or a blocking task for other callers): a batch is point look-ups and single
//! row inserts through prepared statements, back to back, then one commit. Reads stay on the
//! sqlx pool; WAL lets them run beside the writer.
//!
//! The planning is the shared one (`batch.rs`); only the statements differ from PostgreSQL's.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::StoreError;
use super::batch::{self, Lookups, Plan};
use super::sqlite_keys::RecentKeys;
use super::types::*;
use crate::identity::link::match_record;
use crate::identity::{Decision, MatchInput, Matcher, Prepared, Scored};
use crate::model::ProfilePatch;
use crate::rules::{NotificationRow, Prior, RuleSet, StopRow};

/// The writer connection.
pub struct SqliteWriter {
    conn: Connection,
    cache: CandidateCache,
    keys: RecentKeys,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

impl SqliteWriter {
    /// Opens the store's file for writing. The schema must exist (the sqlx side migrates it).
    pub fn open(path: &str, key: Option<&super::cipher::StoreKey>) -> Result<SqliteWriter, StoreError> {
        let conn = Connection::open(path)?;
        super::sqlite_cipher::apply_key(&conn, key)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // The same settings as the pool's connections (see `sqlite.rs` for the why of each),
        // but a commit does not wait for the disk: whoever answers a sender first makes the
        // commit durable (`SqliteStore::make_durable`), one sync for several commits.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456; PRAGMA temp_store = memory;
             PRAGMA wal_autocheckpoint = 40000;",
        )?;
        // Ingest's statements and the outbox writer's (`sqlite_outbox.rs`) all stay prepared.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteWriter {
            conn,
            cache: CandidateCache::default(),
            keys: RecentKeys::default(),
        })
    }

    /// The connection, for the outbox writer's groups (`sqlite_outbox.rs`).
    pub(super) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Writes a group of records in one transaction (see [`super::Store::apply_batch`]).
    pub fn apply_batch(
        &mut self,
        records: &[NewRecord],
        matcher: &Matcher,
        rules: &RuleSet,
    ) -> Result<Vec<Applied>, StoreError> {
        // Preparing records for comparison needs no lock.
        let inputs = batch::match_inputs(records, matcher);
        // IMMEDIATE: take the write lock first, so the ids read below stay ours.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let lookups = lookup(&tx, records, &inputs, matcher, &mut self.cache)?;
        let mut plan = batch::plan(records, lookups, &inputs, matcher)?;
        let stored = stored_sources(&tx, &plan)?;
        batch::settle(&mut plan, &stored, &matcher.survivorship)?;
        let priors = clinical_priors(&tx, &batch::watched(&plan, rules))?;
        let feed = rules.changes.on();
        let stored_profiles = match feed {
            true => super::write_changes::sqlite_before(&tx, &plan)?,
            false => HashMap::new(),
        };
        write(&tx, &plan)?;
        self.keys.write(&tx, &plan.match_keys)?;
        let (notifications, stops) = batch::outbox(&plan, &priors, rules, jiff::Timestamp::now())?;
        write_outbox(&tx, &notifications, &stops)?;
        if feed {
            super::write_changes::sqlite_write(&tx, &plan, &stored_profiles)?;
        }
        // Before the commit: should it fail, the forgotten entries are merely read again.
        self.cache.forget(&plan);
        tx.commit()?;
        self.keys.committed();
        Ok(plan.applied)
    }

    /// What ingest would do with this patch, found by the ingest's own look-ups and plan in a
    /// read transaction that writes nothing (see [`super::Store::match_patch`]).
    pub fn match_patch(
        &mut self,
        patch: &ProfilePatch,
        matcher: &Matcher,
    ) -> Result<MatchResult, StoreError> {
        let records = [batch::probe(patch)];
        let inputs = batch::match_inputs(&records, matcher);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let lookups = lookup(&tx, &records, &inputs, matcher, &mut self.cache)?;
        let plan = batch::plan(&records, lookups, &inputs, matcher)?;
        let result = batch::match_result(&plan)?;
        tx.rollback()?;
        Ok(result)
    }
}

/// Everything the planner needs to know, by point look-ups on the indexes.
fn lookup(
    c: &Connection,
    records: &[NewRecord],
    inputs: &[Option<Arc<MatchInput>>],
    matcher: &Matcher,
    cache: &mut CandidateCache,
) -> Result<Lookups, StoreError> {
    let keys = batch::lookup_keys(records);
    let mut l = Lookups {
        next_message_id: c
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM messages")?
            .query_row([], |r| r.get(0))?,
        next_source_record_id: c
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM source_records")?
            .query_row([], |r| r.get(0))?,
        ..Lookups::default()
    };

    let mut by_control_id = c.prepare_cached(
        "SELECT id, sender, control_id, content_hash, person_id, status FROM messages WHERE control_id = ?1",
    )?;
    for control_id in &keys.control_ids {
        let mut rows = by_control_id.query([control_id])?;
        while let Some(row) = rows.next()? {
            let status: String = row.get(5)?;
            if status != "processed" && status != "unmapped" {
                continue;
            }
            let id: i64 = row.get(0)?;
            let person: Option<String> = row.get(4)?;
            batch::note_accepted(&mut l, (row.get(1)?, row.get(2)?, row.get(3)?), id, person);
        }
    }

    let mut by_value =
        c.prepare_cached("SELECT system, value, person_id FROM identifiers WHERE value = ?1")?;
    let mut profile = c.prepare_cached("SELECT profile FROM persons WHERE id = ?1")?;
    for value in &keys.identifier_values {
        let mut rows = by_value.query([value])?;
        while let Some(row) = rows.next()? {
            let person: String = row.get(2)?;
            if !l.profiles.contains_key(&person) {
                let text: Option<String> = profile.query_row([&person], |r| r.get(0)).optional()?;
                if let Some(text) = text {
                    l.profiles
                        .insert(person.clone(), serde_json::from_str::<ProfilePatch>(&text)?);
                }
            }
            l.identifiers.insert((row.get(0)?, row.get(1)?), person);
        }
    }

    let mut by_key =
        c.prepare_cached("SELECT id, source_system, source_key FROM source_records WHERE source_key = ?1")?;
    for key in &keys.source_keys {
        let mut rows = by_key.query([key])?;
        while let Some(row) = rows.next()? {
            l.source_records.insert((row.get(1)?, row.get(2)?), row.get(0)?);
        }
    }

    // Candidates for the records no identifier links: the source records under their
    // blocking keys, most selective key first, until `max_candidates` are found.
    let cap = matcher.max_block;
    let mut under_key = super::sqlite_keys::lookup(c, cap + 1)?;
    let mut person_of = c.prepare_cached("SELECT person_id FROM source_records WHERE id = ?1")?;
    let mut patch_of = c.prepare_cached("SELECT person_id, patch FROM source_records WHERE id = ?1")?;
    for index in batch::records_to_match(records, inputs, &l) {
        let Some(input) = &inputs[index] else { continue };
        let mut found: Vec<i64> = Vec::new();
        for &key in &input.keys {
            if found.len() >= matcher.max_candidates {
                break;
            }
            if let Entry::Vacant(slot) = l.keyed.entry(key) {
                // A key this common narrows nothing: it is left out.
                if cache.common_keys.contains(&key) {
                    l.common_keys.insert(key);
                    slot.insert(Vec::new());
                    continue;
                }
                let ids = under_key.under(key)?;
                if ids.len() > cap {
                    cache.note_common(key);
                    l.common_keys.insert(key);
                    slot.insert(Vec::new());
                } else {
                    slot.insert(ids);
                }
            }
            for &id in &l.keyed[&key] {
                if found.len() >= matcher.max_candidates || found.contains(&id) {
                    continue;
                }
                found.push(id);
                if l.candidates.contains_key(&id) {
                    continue;
                }
                // The person may have changed by a merge: read it; the prepared patch only
                // changes through this writer, which keeps its cache current.
                let entry = match cache.get(id) {
                    Some(prepared) => person_of
                        .query_row([id], |r| r.get::<_, String>(0))
                        .optional()?
                        .map(|person| (person, prepared.clone())),
                    None => match patch_of
                        .query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .optional()?
                    {
                        Some((person, patch)) => {
                            let patch: ProfilePatch = serde_json::from_str(&patch)?;
                            let prepared = Arc::new(crate::identity::prepare(&match_record(&patch)));
                            cache.insert(id, prepared.clone());
                            Some((person, prepared))
                        }
                        None => None,
                    },
                };
                if let Some(entry) = entry {
                    l.candidates.insert(id, entry);
                }
            }
        }
        // The golden record of the person this record will be linked to (if any) is read now:
        // the others are never needed. The plan decides again, with this batch's records too.
        // Each compared once: the plan takes these scores and compares only the batch's own.
        let scored: Vec<(i64, &String, Scored)> = found
            .iter()
            .filter_map(|id| {
                let (person, prepared) = l.candidates.get(id)?;
                Some((
                    *id,
                    person,
                    matcher.model.score_candidate(&input.prepared, prepared),
                ))
            })
            .collect();
        let outcome = matcher
            .model
            .choose(scored.iter().map(|(_, person, s)| (*person, *s)));
        if let (Decision::Link, Some((person, _))) = (outcome.decision, outcome.best)
            && let Entry::Vacant(slot) = l.profiles.entry(person.clone())
        {
            let text: Option<String> = profile.query_row([person], |r| r.get(0)).optional()?;
            if let Some(text) = text {
                slot.insert(serde_json::from_str::<ProfilePatch>(&text)?);
            }
        }
        let scored = scored.iter().map(|(id, _, s)| (*id, *s)).collect();
        l.record_candidates.insert(index, scored);
    }
    Ok(l)
}

/// The stored source records survivorship needs for this plan ([`batch::stored_needed`]).
fn stored_sources(c: &Connection, plan: &Plan<'_>) -> Result<Vec<batch::StoredSource>, StoreError> {
    let (persons, ids) = batch::stored_needed(plan);
    let mut out: Vec<batch::StoredSource> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let read =
        |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, String, String, String, Option<i64>, String)> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        };
    const COLUMNS: &str =
        "SELECT id, person_id, source_system, updated_at, last_message_id, patch FROM source_records";
    let mut by_person = c.prepare_cached(&format!("{COLUMNS} WHERE person_id = ?1"))?;
    let mut by_id = c.prepare_cached(&format!("{COLUMNS} WHERE id = ?1"))?;
    let mut rows = Vec::new();
    for person in &persons {
        for row in by_person.query_map([person], read)? {
            rows.push(row?);
        }
    }
    for id in ids {
        if let Some(row) = by_id.query_row([id], read).optional()? {
            rows.push(row);
        }
    }
    for (id, person_id, system, at, message_id, patch) in rows {
        if seen.insert(id) {
            out.push(batch::StoredSource {
                id,
                person_id,
                system,
                at,
                message_id: message_id.unwrap_or(0),
                patch: serde_json::from_str(&patch)?,
            });
        }
    }
    Ok(out)
}

/// Copies the write-ahead log into the database on a thread and connection of its own, so
/// that the writer does not stop for it: SQLite's automatic checkpoint runs inside the commit
/// that crosses the threshold, holding every waiting record up while tens of megabytes are
/// copied and the database file synced. Passive: it never waits for the writer nor blocks it.
/// The writer's own automatic checkpoint stays on, four times further out, as a net (and it
/// finds little left to copy).
#[derive(Debug)]
pub struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// At most this often.
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

    /// Starts the thread; `None` when its connection or the thread cannot start (the writer's
    /// own automatic checkpoint, at 40,000 pages, then keeps the log bounded).
    pub fn start(path: &str, key: Option<&super::cipher::StoreKey>) -> Option<Checkpointer> {
        let conn = Connection::open(path)
            .map_err(StoreError::from)
            .and_then(|c| super::sqlite_cipher::apply_key(&c, key).map(|()| c))
            .inspect_err(
                |e| tracing::warn!(error = %e, "no checkpoint connection; the writer checkpoints itself"),
            )
            .ok()?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("carehub-checkpoint".into())
            .spawn(move || {
                // Ends when the store's last handle (and with it the sender) is gone.
                while woken.recv().is_ok() {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    match done {
                        Ok((frames, copied)) => tracing::trace!(frames, copied, "checkpoint"),
                        Err(e) => tracing::debug!(error = %e, "a checkpoint did not run; the next one will"),
                    }
                    std::thread::sleep(Self::EVERY);
                }
            });
        spawned.ok().map(|_| Checkpointer { wake })
    }

    /// Asks for a checkpoint soon (a commit happened); never waits.
    pub fn poke(&self) {
        let _ = self.wake.try_send(());
    }
}

/// Prepared patches of stored source records, kept between batches: a record is compared
/// with many later ones, and reading and preparing its patch costs far more than comparing.
///
/// Two generations, a cheap approximation of least-recently-used: entries go into `current`;
/// when it is full it becomes `previous` and the old `previous` is dropped on another thread
/// (freeing 100,000 prepared records takes most of a second: done here, it stalled the record
/// that happened to fill the cache). A hit in `previous` moves the entry back to `current`.
///
/// It also remembers the blocking keys found too common (held by more than `max_block`
/// stored records): keys only gain records, so such a key is skipped from then on without
/// reading its records again at every batch (a frequent name and year, read for each of its
/// namesakes, was a good part of a first pull).
#[derive(Default)]
pub struct CandidateCache {
    current: HashMap<i64, Arc<Prepared>>,
    previous: HashMap<i64, Arc<Prepared>>,
    common_keys: std::collections::HashSet<i64>,
}

impl CandidateCache {
    /// Most entries kept in one generation (a few hundred MB at worst for both).
    const GENERATION: usize = 100_000;
    /// Most common keys remembered (8 bytes each); past it the set starts again.
    const COMMON_KEYS: usize = 1_000_000;

    fn note_common(&mut self, key: i64) {
        if self.common_keys.len() >= Self::COMMON_KEYS {
            self.common_keys.clear();
        }
        self.common_keys.insert(key);
    }

    fn get(&mut self, id: i64) -> Option<Arc<Prepared>> {
        if let Some(p) = self.current.get(&id) {
            return Some(p.clone());
        }
        let p = self.previous.remove(&id)?;
        self.insert(id, p.clone());
        Some(p)
    }

    fn insert(&mut self, id: i64, prepared: Arc<Prepared>) {
        if self.current.len() >= Self::GENERATION {
            let full = std::mem::take(&mut self.current);
            let old = std::mem::replace(&mut self.previous, full);
            if !old.is_empty() {
                // Should the thread not start, the map is dropped here: slower, not wrong.
                let _ = std::thread::Builder::new()
                    .name("carehub-cache-drop".into())
                    .spawn(move || drop(old));
            }
        }
        self.current.insert(id, prepared);
    }

    /// Forgets the records a batch rewrote.
    fn forget(&mut self, plan: &Plan<'_>) {
        for s in &plan.source_records {
            self.current.remove(&s.id);
            self.previous.remove(&s.id);
        }
    }
}

/// The stored state of the clinical records a batch is about to overwrite.
fn clinical_priors(
    c: &Connection,
    keys: &[batch::PriorKey],
) -> Result<HashMap<batch::PriorKey, Prior>, StoreError> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut one = c.prepare_cached(
        "SELECT status, sort_at FROM clinical_records WHERE kind = ?1 AND source_system = ?2 AND record_key = ?3",
    )?;
    for k in keys {
        let prior = one
            .query_row(params![k.0, k.1, k.2], |r| {
                Ok(Prior {
                    status: r.get(0)?,
                    sort_at: r.get(1)?,
                })
            })
            .optional()?;
        if let Some(p) = prior {
            out.insert(k.clone(), p);
        }
    }
    Ok(out)
}

/// The batch's notifications (the outbox) and the journeys its events stop.
fn write_outbox(c: &Connection, rows: &[NotificationRow], stops: &[StopRow]) -> Result<(), StoreError> {
    let now = super::sql::now();
    let mut stop = c.prepare_cached(
        "UPDATE notifications SET status = 'cancelled', detail = ?1, updated_at = ?2
         WHERE rule = ?3 AND (subject = ?5 OR ?5 IS NULL AND person_id = ?4) AND status IN ('pending', 'queued', 'sending')",
    )?;
    for s in stops {
        stop.execute(params![s.reason, now, s.rule, s.person_id, s.subject])?;
    }
    let mut insert = c.prepare_cached(
        "INSERT INTO notifications (id, rule, category, person_id, subject, dedupe_key, template, channels, context,
           cause, status, due_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?12, ?12)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )?;
    for n in rows {
        insert.execute(params![
            n.id,
            n.rule,
            n.category,
            n.person_id,
            n.subject,
            n.dedupe_key,
            n.template,
            n.channels,
            n.context,
            n.cause,
            n.due_at,
            n.created_at
        ])?;
    }
    Ok(())
}

/// Writes a planned batch, row by row through prepared statements.
fn write(c: &Connection, plan: &Plan<'_>) -> Result<(), StoreError> {
    let mut person = c.prepare_cached(
        "INSERT INTO persons (id, profile, created_at, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
    )?;
    for p in &plan.persons {
        person.execute(params![p.id, p.profile, p.created_at, p.updated_at])?;
    }
    let mut source = c.prepare_cached(
        "INSERT INTO source_records (id, source_system, source_key, person_id, patch, last_message_id, created_at, updated_at,
           link_method, link_score, link_detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET patch = excluded.patch, last_message_id = excluded.last_message_id,
           updated_at = excluded.updated_at",
    )?;
    for s in &plan.source_records {
        source.execute(params![
            s.id,
            s.source_system,
            s.source_key,
            s.person_id,
            s.patch,
            s.last_message_id,
            s.at,
            s.link_method,
            s.link_score,
            s.link_detail
        ])?;
    }
    if let Some(through) = plan.keys_through {
        c.prepare_cached("UPDATE identity_state SET keys_through = ?1 WHERE id = 1 AND keys_through < ?1")?
            .execute([through])?;
    }
    let mut review = c.prepare_cached(
        "INSERT INTO review_items (person_id, candidate_id, message_id, score, breakdown, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)",
    )?;
    for r in &plan.reviews {
        review.execute(params![
            r.person_id,
            r.candidate_id,
            r.message_id,
            r.score,
            r.breakdown,
            r.at
        ])?;
    }
    let mut identifier = c.prepare_cached(
        "INSERT INTO identifiers (system, value, kind, person_id, source_record_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (value, system) DO NOTHING",
    )?;
    for i in &plan.identifiers {
        identifier.execute(params![
            i.system,
            i.value,
            i.kind,
            i.person_id,
            i.source_record_id,
            i.at
        ])?;
    }
    let mut clinical = c.prepare_cached(
        "INSERT INTO clinical_records (kind, source_system, record_key, person_id, status, at, sort_at, code, data,
           first_message_id, last_message_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?11)
         ON CONFLICT (kind, source_system, record_key) DO UPDATE SET
           person_id = COALESCE(excluded.person_id, clinical_records.person_id),
           status = COALESCE(excluded.status, clinical_records.status),
           at = COALESCE(excluded.at, clinical_records.at),
           sort_at = COALESCE(excluded.sort_at, clinical_records.sort_at),
           code = COALESCE(excluded.code, clinical_records.code),
           data = json_patch(json_patch(clinical_records.data, ?12), excluded.data),
           last_message_id = excluded.last_message_id, updated_at = excluded.updated_at",
    )?;
    for r in &plan.clinical {
        clinical.execute(params![
            r.kind,
            r.source_system,
            r.key,
            r.person_id,
            r.status,
            r.at,
            r.sort_at,
            r.code,
            r.data,
            r.message_id,
            r.received_at,
            // json_patch merges nested objects; a stated code replaces the stored one whole (as
            // PostgreSQL's `||` does): clear those keys first.
            shallow_clear(&r.data)
        ])?;
    }
    let mut deleted = c.prepare_cached(
        "UPDATE clinical_records SET status = 'entered-in-error',
           data = json_patch(data, '{\"status\":\"entered-in-error\"}'), last_message_id = ?1, updated_at = ?2
         WHERE last_message_id IN (SELECT id FROM messages WHERE sender = ?3
           AND (control_id = ?4 OR (control_id >= ?5 AND control_id < ?6)))",
    )?;
    for d in &plan.deletions {
        let (exact, from, to) = d.range();
        deleted.execute(params![d.message_id, d.at, d.sender, exact, from, to])?;
    }
    let mut cursor = c.prepare_cached(
        "INSERT INTO connector_cursors (connector, resource_type, cursor, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (connector, resource_type) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )?;
    let at = jiff::Timestamp::now().to_string();
    for k in &plan.cursors {
        cursor.execute(params![k.connector, k.resource_type, k.value, at])?;
    }
    let mut message = c.prepare_cached(
        "INSERT INTO messages (id, connector, origin, received_at, sender, control_id, message_type, charset,
           content_hash, raw, status, error, warnings, mapping, person_id, duplicate_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    let mut again = c.prepare_cached(
        "UPDATE messages SET sender = ?2, control_id = ?3, message_type = ?4, charset = ?5, status = ?6, error = ?7,
           warnings = ?8, mapping = ?9, person_id = ?10, duplicate_of = ?11, reprocessed_at = ?12,
           reprocess_count = reprocess_count + 1
         WHERE id = ?1",
    )?;
    let now = jiff::Timestamp::now().to_string();
    for m in &plan.messages {
        let r = m.record;
        if r.reprocess.is_some() {
            again.execute(params![
                m.id,
                r.sender,
                r.control_id,
                r.message_type,
                r.charset,
                m.status.as_str(),
                m.error,
                m.warnings,
                m.mapping,
                m.person_id,
                m.duplicate_of,
                now
            ])?;
            continue;
        }
        message.execute(params![
            m.id,
            r.connector,
            r.origin,
            r.received_at,
            r.sender,
            r.control_id,
            r.message_type,
            r.charset,
            r.content_hash,
            r.raw,
            m.status.as_str(),
            m.error,
            m.warnings,
            m.mapping,
            m.person_id,
            m.duplicate_of
        ])?;
    }
    let mut counter = c.prepare_cached(
        "INSERT INTO connectors (name, kind, state, received, processed, errors, duplicates, unmapped,
           last_message_at, updated_at)
         VALUES (?1, 'unknown', 'running', ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (name) DO UPDATE SET received = connectors.received + excluded.received,
           processed = connectors.processed + excluded.processed, errors = connectors.errors + excluded.errors,
           duplicates = connectors.duplicates + excluded.duplicates, unmapped = connectors.unmapped + excluded.unmapped,
           last_message_at = COALESCE(excluded.last_message_at, connectors.last_message_at),
           updated_at = excluded.updated_at",
    )?;
    for (name, n) in &plan.counters {
        counter.execute(params![
            name,
            n.received,
            n.processed,
            n.errors,
            n.duplicates,
            n.unmapped,
            n.last_message_at,
            now
        ])?;
    }
    Ok(())
}

/// `{"key": null}` for every top-level key of `data` whose value is an object.
fn shallow_clear(data: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    let cleared: serde_json::Map<String, serde_json::Value> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, x)| x.is_object())
        .map(|(k, _)| (k.clone(), serde_json::Value::Null))
        .collect();
    serde_json::Value::Object(cleared).to_string()
}
