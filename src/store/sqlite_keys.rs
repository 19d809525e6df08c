//! The SQLite writer's blocking keys, written in two steps.
//!
//! `match_keys` is keyed by a 64-bit hash: every new key lands on a random leaf of a large
//! index, so a batch's few thousand keys dirtied about as many pages, and every commit copied
//! them all to the write-ahead log (and the checkpoint copied them again). New keys go to
//! `match_keys_recent` instead: a table small enough that a batch's keys share its few pages.
//! Once it holds [`MERGE_AT`] rows, the writer moves them into `match_keys` in key order within
//! a batch's transaction, so each leaf of the large index is written once for many keys.
//! Look-ups read both tables ([`lookup`]). A key already in `match_keys` (a record stated
//! again) may be written to `match_keys_recent` too: reading both removes the repeat, and the
//! move skips it.

use rusqlite::{Connection, params};

use super::StoreError;

/// Rows held in `match_keys_recent` before they are moved.
pub(super) const MERGE_AT: usize = 50_000;

/// How many rows `match_keys_recent` holds as far as this writer knows, as of its last commit
/// (a batch that rolls back never changes it); counted at the first batch (the pool migrates
/// the schema after the writer opens). The count only times the move: a writer of another
/// process on the same file (`carehub pull --once` beside a running hub) may add rows unseen,
/// and look-ups always read the table itself.
#[derive(Debug, Default)]
pub(super) struct RecentKeys {
    rows: Option<usize>,
    /// The count once the batch being written commits.
    pending: Option<usize>,
}

impl RecentKeys {
    /// Writes a batch's keys (inside its transaction), and moves the recent keys into
    /// `match_keys` when there are enough of them.
    pub(super) fn write(&mut self, c: &Connection, keys: &[(i64, i64)]) -> Result<(), StoreError> {
        // A batch that failed after its write left its changes here, never applied.
        self.pending = None;
        let held = match self.rows {
            Some(n) => n,
            None => {
                let n: i64 = c.query_row("SELECT COUNT(*) FROM match_keys_recent", [], |r| r.get(0))?;
                let n = n.max(0) as usize;
                self.rows = Some(n);
                n
            }
        };
        // Sorted, the inserts walk the small index in order.
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut insert = c.prepare_cached(
            "INSERT INTO match_keys_recent (key, source_record_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        let mut added = 0;
        for (key, source_record) in &sorted {
            added += insert.execute(params![key, source_record])?;
        }
        let moved = held + added >= MERGE_AT;
        if moved {
            c.execute_batch(
                "INSERT INTO match_keys (key, source_record_id)
                   SELECT key, source_record_id FROM match_keys_recent WHERE true ORDER BY key, source_record_id
                   ON CONFLICT DO NOTHING;
                 DELETE FROM match_keys_recent;",
            )?;
            tracing::debug!(keys = held + added, "blocking keys moved into the main index");
        }
        self.pending = Some(if moved { 0 } else { held + added });
        Ok(())
    }

    /// The batch committed: what it wrote holds.
    pub(super) fn committed(&mut self) {
        if let Some(rows) = self.pending.take() {
            self.rows = Some(rows);
        }
    }
}

/// The look-up of the source records under a key, in both tables. `limit`: see
/// [`KeyLookup::under`].
pub(super) fn lookup(c: &Connection, limit: usize) -> Result<KeyLookup<'_>, StoreError> {
    // The limit is written into the SQL, not bound: SQLite plans `LIMIT ?` with the bound
    // value, so each new binding (one per key) would compile the statement again.
    let under = |table: &str| {
        c.prepare_cached(&format!(
            "SELECT source_record_id FROM {table} WHERE key = ?1 LIMIT {limit}"
        ))
    };
    Ok(KeyLookup {
        main: under("match_keys")?,
        recent: under("match_keys_recent")?,
        limit,
    })
}

/// Reads the source records under blocking keys (see [`lookup`]).
pub(super) struct KeyLookup<'c> {
    main: rusqlite::CachedStatement<'c>,
    recent: rusqlite::CachedStatement<'c>,
    limit: usize,
}

impl KeyLookup<'_> {
    /// The source records under `key`, in id order, at most `limit` (more than `limit` only
    /// says "more").
    pub(super) fn under(&mut self, key: i64) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = Vec::new();
        for id in self.main.query_map([key], |r| r.get(0))? {
            ids.push(id?);
        }
        let stored = ids.len();
        for id in self.recent.query_map([key], |r| r.get(0))? {
            ids.push(id?);
        }
        if ids.len() > stored {
            ids.sort_unstable();
            ids.dedup();
            ids.truncate(self.limit);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE match_keys (key INTEGER NOT NULL, source_record_id INTEGER NOT NULL,
               PRIMARY KEY (key, source_record_id)) WITHOUT ROWID;
             CREATE TABLE match_keys_recent (key INTEGER NOT NULL, source_record_id INTEGER NOT NULL,
               PRIMARY KEY (key, source_record_id)) WITHOUT ROWID;",
        )
        .unwrap();
        c
    }

    fn under(c: &Connection, key: i64, limit: usize) -> Vec<i64> {
        lookup(c, limit).unwrap().under(key).unwrap()
    }

    fn count(c: &Connection, table: &str) -> i64 {
        c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Writes a batch in a transaction that commits.
    fn batch(c: &mut Connection, keys: &mut RecentKeys, rows: &[(i64, i64)]) {
        let tx = c.transaction().unwrap();
        keys.write(&tx, rows).unwrap();
        tx.commit().unwrap();
        keys.committed();
    }

    #[test]
    fn records_are_found_under_their_keys_before_and_after_the_keys_move() {
        let mut c = store();
        let mut keys = RecentKeys::default();
        // A record stated again repeats its keys: found once.
        c.execute("INSERT INTO match_keys VALUES (7, 1)", []).unwrap();
        batch(&mut c, &mut keys, &[(7, 1), (7, 3), (9, 2)]);
        assert_eq!(under(&c, 7, 26), vec![1, 3]);
        assert_eq!(under(&c, 9, 26), vec![2]);
        assert_eq!(under(&c, 8, 26), Vec::<i64>::new());
        // The limit holds across both tables.
        assert_eq!(under(&c, 7, 1), vec![1]);

        // Enough keys to move them all into the main index.
        let many: Vec<(i64, i64)> = (0..MERGE_AT as i64).map(|i| (1_000 + i, 10 + i)).collect();
        batch(&mut c, &mut keys, &many);
        assert_eq!(count(&c, "match_keys_recent"), 0);
        assert_eq!(count(&c, "match_keys") as usize, MERGE_AT + 3, "moved once each");
        assert_eq!(under(&c, 7, 26), vec![1, 3]);
        assert_eq!(under(&c, 1_000, 26), vec![10]);
        // And the next keys go to the small table again.
        batch(&mut c, &mut keys, &[(7, 4)]);
        assert_eq!(count(&c, "match_keys_recent"), 1);
        assert_eq!(under(&c, 7, 26), vec![1, 3, 4]);
    }

    #[test]
    fn a_batch_that_rolls_back_changes_neither_the_keys_nor_when_they_move() {
        let mut c = store();
        let mut keys = RecentKeys::default();
        let almost: Vec<(i64, i64)> = (0..MERGE_AT as i64 - 1).map(|i| (1_000 + i, 10 + i)).collect();
        batch(&mut c, &mut keys, &almost);
        {
            // This batch's key reaches the threshold: the move runs, then the batch fails and
            // everything it did is rolled back.
            let tx = c.transaction().unwrap();
            keys.write(&tx, &[(6, 2)]).unwrap();
            assert_eq!(count(&tx, "match_keys_recent"), 0, "moved within the batch");
        }
        assert_eq!(under(&c, 6, 26), Vec::<i64>::new(), "its key is gone");
        assert_eq!(under(&c, 1_000, 26), vec![10], "the earlier keys are still found");
        assert_eq!(count(&c, "match_keys") as usize, 0);
        // The count was kept: the next batch that commits reaches the threshold and moves.
        batch(&mut c, &mut keys, &[(6, 2)]);
        assert_eq!(count(&c, "match_keys_recent"), 0);
        assert_eq!(count(&c, "match_keys") as usize, MERGE_AT);
        assert_eq!(under(&c, 6, 26), vec![2]);
    }
}
