-- carehub store, version 1: persons, identifiers, source records (with field provenance),
-- the message log, connector state and counters, and the file log.
-- Times are RFC 3339 UTC text; ids of persons are UUIDv7 text.

CREATE TABLE persons (
    id          TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,            -- golden record, JSON (ProfilePatch shape)
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE source_records (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source_system   TEXT NOT NULL,
    source_key      TEXT NOT NULL,        -- the record's key in its system (first identifier)
    person_id       TEXT NOT NULL REFERENCES persons(id),
    patch           TEXT NOT NULL,        -- the latest patch this record stated, JSON: field provenance
    last_message_id INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (source_key, source_system)
);
CREATE INDEX source_records_person ON source_records(person_id);

CREATE TABLE identifiers (
    system           TEXT NOT NULL,
    value            TEXT NOT NULL,
    kind             TEXT,
    person_id        TEXT NOT NULL REFERENCES persons(id),
    source_record_id INTEGER NOT NULL REFERENCES source_records(id),
    created_at       TEXT NOT NULL,
    PRIMARY KEY (value, system)           -- value first: look-ups by value alone use it too
);
CREATE INDEX identifiers_person ON identifiers(person_id);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connector     TEXT NOT NULL,
    origin        TEXT,                   -- peer address or file name
    received_at   TEXT NOT NULL,
    sender        TEXT,                   -- MSH-3^MSH-4
    control_id    TEXT,                   -- MSH-10
    message_type  TEXT,                   -- MSH-9, e.g. ADT^A01
    charset       TEXT,
    content_hash  TEXT NOT NULL,          -- SHA-256 of the raw bytes
    raw           BLOB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('received', 'processed', 'error', 'duplicate', 'unmapped')),
    error         TEXT,
    warnings      TEXT,                   -- JSON array
    mapping       TEXT,
    person_id     TEXT,
    duplicate_of  INTEGER
);
-- Indexes cost page writes on every ingest commit: only what the hot path and ops need.
CREATE INDEX messages_dedupe ON messages(control_id, sender, content_hash);
-- Ops look for the few messages that are not processed; processed ones are read by id order.
CREATE INDEX messages_status ON messages(status, id) WHERE status <> 'processed';
CREATE INDEX messages_person ON messages(person_id) WHERE person_id IS NOT NULL;

CREATE TABLE connectors (
    name              TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL,      -- starting, running, degraded, stopped
    detail            TEXT,
    received          INTEGER NOT NULL DEFAULT 0,
    processed         INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    duplicates        INTEGER NOT NULL DEFAULT 0,
    unmapped          INTEGER NOT NULL DEFAULT 0,
    last_message_at   TEXT,
    updated_at        TEXT NOT NULL,
    cursor            TEXT
);

CREATE TABLE files (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connector     TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    messages      INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('done', 'error')),
    reason        TEXT,
    moved_to      TEXT,
    processed_at  TEXT NOT NULL
);
CREATE INDEX files_connector ON files(connector, id);
