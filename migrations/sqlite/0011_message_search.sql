-- Message search and reprocess (docs/operations.md#the-message-log-search-and-reprocess).
--
-- Reprocess rewrites a message's row in place: when it was last read again, and how often.
ALTER TABLE messages ADD COLUMN reprocessed_at TEXT;
ALTER TABLE messages ADD COLUMN reprocess_count INTEGER NOT NULL DEFAULT 0;
-- The message code (MSH-9.1: `ADT` of `ADT^A01`; a FHIR resource type as it is), so that a
-- search by code is one index range in id order, not a sort of every event of the code.
-- Computed by SQLite itself (VIRTUAL: no bytes in the row; the index holds it).
ALTER TABLE messages ADD COLUMN message_code TEXT GENERATED ALWAYS AS (
    CASE WHEN instr(message_type, '^') > 0 THEN substr(message_type, 1, instr(message_type, '^') - 1)
         ELSE message_type END
) VIRTUAL;
-- Each search filter walks one index newest first and stops after a page (keyset paging):
-- connector, type, code and time range. Control id (messages_dedupe), status (messages_status)
-- and person (messages_person) already have theirs. Each is appended to in id order at ingest.
CREATE INDEX messages_connector ON messages(connector, id);
CREATE INDEX messages_type ON messages(message_type, id);
CREATE INDEX messages_code ON messages(message_code, id);
CREATE INDEX messages_received ON messages(received_at, id);
