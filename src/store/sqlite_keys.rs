//! The SQLite writer's blocking keys, written in two steps.
//!
//! `match_keys` is keyed by a 64-bit hash: every new key lands on a random leaf of a large
//! index, so a batch's few thousand keys dirtied about as many pages, and every commit copied
//! them all to the write-ahead log (and the checkpoint copied them again). New keys go to
//! `match_keys_recent` instead: a table small enough that a batch's keys share its few pages.
//! Once it holds [`MERGE_AT`] keys, the writer moves them into `match_keys` in key order within
//! a batch's transaction, so each leaf of the large index is written once for many keys.
//! Look-ups read both tables ([`RecentKeys::lookup`]). A key already in `match_keys` (a
//! record stated again) may be written to `match_keys_recent` too: reading both removes the
//! repeat, and the move skips it.

use std::collections::HashSet;

use rusqlite::{Connection, params};

use super::StoreError;

/// Rows held in `match_keys_recent` before they are moved.
pub(super) const MERGE_AT: usize = 50_000;

/// What the writer knows of `match_keys_recent`, as of its last commit. Only the writer
/// writes the table, so this stays true (a batch that rolls back never changes it); it is
/// read from the table at the first batch (the pool migrates the schema after the writer
/// opens).
#[derive(Debug, Default)]
pub(super) struct RecentKeys {
    known: Option<Known>,
    /// What the batch being written changes, applied when it commits.
    pending: Option<Pending>,
}

#[derive(Debug, Default)]
struct Known {
    rows: usize,
    /// The keys in the table: a look-up reads the table only for these.
    keys: HashSet<i64>,
}

#[derive(Debug)]
struct Pending {
    moved: bool,
    rows: usize,
    keys: Vec<i64>,
}

impl RecentKeys {
    fn known(&mut self, c: &Connection) -> Result<&Known, StoreError> {
        if self.known.is_none() {
            let mut keys = HashSet::new();
            let mut rows = 0;
            let mut all = c.prepare_cached("SELECT key FROM match_keys_recent")?;
            for key in all.query_map([], |r| r.get(0))? {
                keys.insert(key?);
                rows += 1;
            }
            self.known = Some(Known { rows, keys });
        }
        Ok(self.known.get_or_insert_default())
    }

    /// Writes a batch's keys (inside its transaction), and moves the recent keys into
    /// `match_keys` when there are enough of them.
    pub(super) fn write(&mut self, c: &Connection, keys: &[(i64, i64)]) -> Result<(), StoreError> {
        // A batch that failed after its write left its changes here, never applied.
        self.pending = None;
        let held = self.known(c)?.rows;
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
        self.pending = Some(Pending {
            moved,
            rows: added,
            keys: if moved {
                Vec::new()
            } else {
                sorted.into_iter().map(|(k, _)| k).collect()
            },
        });
        Ok(())
    }

    /// The batch committed: what it wrote holds.
    pub(super) fn committed(&mut self) {
        let (Some(pending), Some(known)) = (self.pending.take(), self.known.as_mut()) else {
            return;
        };
        if pending.moved {
            *known = Known::default();
        } else {
            known.rows += pending.rows;
            known.keys.extend(pending.keys);
        }
    }

    /// The look-up of the source records under a key: reads `match_keys`, and
    /// `match_keys_recent` for the keys it holds. `limit`: see [`KeyLookup::under`].
    pub(super) fn lookup<'c>(
        &mut self,
        c: &'c Connection,
        limit: usize,
    ) -> Result<KeyLookup<'_, 'c>, StoreError> {
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
            held: &self.known(c)?.keys,
            limit,
        })
    }
}

/// Reads the source records under blocking keys (see [`RecentKeys::lookup`]).
pub(super) struct KeyLookup<'k, 'c> {
    main: rusqlite::CachedStatement<'c>,
    recent: rusqlite::CachedStatement<'c>,
    held: &'k HashSet<i64>,
    limit: usize,
}

impl KeyLookup<'_, '_> {
    /// The source records under `key`, in id order, at most `limit` (more than `limit` only
    /// says "more").
    pub(super) fn under(&mut self, key: i64) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = Vec::new();
        for id in self.main.query_map([key], |r| r.get(0))? {
            ids.push(id?);
        }
        if self.held.contains(&key) {
            for id in self.recent.query_map([key], |r| r.get(0))? {
                ids.push(id?);
            }
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

    fn under(c: &Connection, keys: &mut RecentKeys, key: i64, limit: usize) -> Result<Vec<i64>, StoreError> {
        keys.lookup(c, limit)?.under(key)
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
        assert_eq!(under(&c, &mut keys, 7, 26).unwrap(), vec![1, 3]);
        assert_eq!(under(&c, &mut keys, 9, 26).unwrap(), vec![2]);
        assert_eq!(under(&c, &mut keys, 8, 26).unwrap(), Vec::<i64>::new());
        // The limit holds across both tables.
        assert_eq!(under(&c, &mut keys, 7, 1).unwrap(), vec![1]);

        // Enough keys to move them all into the main index.
        let many: Vec<(i64, i64)> = (0..MERGE_AT as i64).map(|i| (1_000 + i, 10 + i)).collect();
        batch(&mut c, &mut keys, &many);
        assert_eq!(count(&c, "match_keys_recent"), 0);
        assert_eq!(count(&c, "match_keys") as usize, MERGE_AT + 3, "moved once each");
        assert_eq!(under(&c, &mut keys, 7, 26).unwrap(), vec![1, 3]);
        assert_eq!(under(&c, &mut keys, 1_000, 26).unwrap(), vec![10]);
        // And the next keys go to the small table again.
        batch(&mut c, &mut keys, &[(7, 4)]);
        assert_eq!(count(&c, "match_keys_recent"), 1);
        assert_eq!(under(&c, &mut keys, 7, 26).unwrap(), vec![1, 3, 4]);
    }

    #[test]
    fn keys_of_a_batch_that_rolled_back_are_not_looked_for() {
        let mut c = store();
        let mut keys = RecentKeys::default();
        batch(&mut c, &mut keys, &[(5, 1)]);
        {
            let tx = c.transaction().unwrap();
            keys.write(&tx, &[(6, 2)]).unwrap();
            // The batch fails after its keys were written: rolled back, never committed.
        }
        assert_eq!(under(&c, &mut keys, 6, 26).unwrap(), Vec::<i64>::new());
        assert_eq!(under(&c, &mut keys, 5, 26).unwrap(), vec![1]);
        // Written again by a batch that commits, it is found.
        batch(&mut c, &mut keys, &[(6, 2)]);
        assert_eq!(under(&c, &mut keys, 6, 26).unwrap(), vec![2]);
    }
}
