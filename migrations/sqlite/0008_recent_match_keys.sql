-- carehub store (SQLite), version 8: new blocking keys are written to a small table first.
--
-- match_keys is keyed by a 64-bit hash, so each new key lands on a random page of a large
-- index: a batch of 500 records (about 3,500 keys) dirtied about as many pages, and each commit
-- wrote them all to the write-ahead log (9 MB for 500 records, measured). New keys now go to
-- match_keys_recent, small enough that a batch's keys share its few pages; the ingest writer
-- moves them into match_keys in key order, in one transaction, once it holds 50,000
-- (store/sqlite_keys.rs). Look-ups read both. PostgreSQL keeps one table.
CREATE TABLE match_keys_recent (
    key              INTEGER NOT NULL,
    source_record_id INTEGER NOT NULL,
    PRIMARY KEY (key, source_record_id)
) WITHOUT ROWID;
