-- carehub store, version 5: notifications — the outbox, delivery history, consent and
-- communication preferences, and the embedded queue.
--
-- notifications is the transactional outbox: a row is written in the same transaction as the
-- change that caused it (an appointment booked, a result made final) or by the scheduler (a
-- reminder 24 hours before). The relay publishes due rows to the queue and marks them queued
-- only once the queue confirmed; channel workers write what the provider said back into the
-- same row. Times the hub compares (due_at) are epoch milliseconds; times people read are RFC 3339.
CREATE TABLE notifications (
    id           TEXT PRIMARY KEY,
    rule         TEXT NOT NULL,
    category     TEXT NOT NULL CHECK (category IN ('transactional', 'marketing')),
    person_id    TEXT NOT NULL,
    -- What it is about (`appointment|<system>|<key>`), for stop conditions and de-duplication.
    subject      TEXT,
    dedupe_key   TEXT NOT NULL UNIQUE,
    template     TEXT NOT NULL,
    -- The rule's channel order (JSON array) and the facts its template reads (JSON object).
    channels     TEXT NOT NULL,
    context      TEXT NOT NULL,
    cause        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'queued', 'sending', 'sent', 'delivered', 'failed', 'cancelled', 'suppressed')),
    due_at       INTEGER NOT NULL,
    -- Filled when the relay resolves the send: which channel, to what address, in which
    -- language, and the text exactly as queued.
    channel      TEXT,
    address      TEXT,
    language     TEXT,
    -- The time zone quiet hours are read in for this person (their own, or the clinic's).
    timezone     TEXT,
    title        TEXT,
    body         TEXT,
    provider_id  TEXT,
    -- A worker holds the send until then (epoch ms): a duplicate queue message waits.
    claimed_until INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    -- Why it was suppressed, cancelled, deferred or failed.
    detail       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    published_at TEXT,
    sent_at      TEXT,
    delivered_at TEXT
);
CREATE INDEX notifications_due ON notifications (status, due_at);
CREATE INDEX notifications_person ON notifications (person_id, created_at);
CREATE INDEX notifications_provider ON notifications (channel, provider_id);
CREATE INDEX notifications_address ON notifications (channel, address);

-- Every provider call and its outcome.
CREATE TABLE notification_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    provider_id     TEXT,
    detail          TEXT,
    at              TEXT NOT NULL
);
CREATE INDEX notification_attempts_by_notification ON notification_attempts (notification_id, id);

-- Consent per person, category (`transactional`, `marketing`, `*`) and channel (a channel
-- name or `*`). The latest decision of the most specific row wins.
CREATE TABLE consents (
    person_id TEXT NOT NULL,
    category  TEXT NOT NULL,
    channel   TEXT NOT NULL,
    decision  TEXT NOT NULL CHECK (decision IN ('permit', 'deny')),
    source    TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (person_id, category, channel)
);

-- Communication preferences set through the API: language, time zone, messenger ids, tags.
CREATE TABLE patient_preferences (
    person_id  TEXT PRIMARY KEY,
    language   TEXT,
    timezone   TEXT,
    addresses  TEXT NOT NULL DEFAULT '{}',
    tags       TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL
);

-- The embedded queue (queue.kind: embedded): one row per message, invisible while a consumer
-- holds it (locked_until), delivered again when the hold lapses; dead letters keep their reason.
CREATE TABLE queue_messages (
    id           INTEGER PRIMARY KEY,
    queue        TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    available_at INTEGER NOT NULL,
    locked_until INTEGER,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    dead_reason  TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX queue_messages_ready ON queue_messages (queue, available_at);

-- When each scheduled rule last ran.
CREATE TABLE rule_runs (
    rule        TEXT PRIMARY KEY,
    last_run_at TEXT NOT NULL,
    created     INTEGER NOT NULL DEFAULT 0
);
