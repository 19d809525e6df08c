-- Change notifications to clinic systems (docs/subscriptions.md).
--
-- `change_events` is the outbox of changes: ingest writes one row per patient created, updated
-- or merged and per clinical record changed, in the transaction of the change itself (only
-- while some subscription exists), and merges write theirs in the merge's transaction. The
-- relay fans each event out to the subscriptions that want it (`subscription_deliveries`, one
-- row per subscription and event, the subscription's `through` moving past it in the same
-- transaction) and hands the deliveries to the queue. Rows carry ids only, never patient data.
CREATE TABLE change_events (
    seq             BIGSERIAL PRIMARY KEY,
    -- The id receivers de-duplicate on (UUIDv7), sent as X-Carehub-Event-Id.
    id              TEXT NOT NULL UNIQUE,
    event           TEXT NOT NULL,
    person_id       TEXT NOT NULL,
    -- patient.merged: the person merged into `person_id`.
    other_person_id TEXT,
    -- record.changed: the record's (kind, source system, key).
    record_kind     TEXT,
    record_system   TEXT,
    record_key      TEXT,
    created_at      TEXT NOT NULL
);

-- Subscriptions from the configuration (`origin` config: the secret stays in the environment)
-- and from the API (`origin` api: the secret is kept here, never shown again).
CREATE TABLE subscriptions (
    name       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    -- JSON: {"events": [...], "record_kinds": [...]}
    filter     TEXT NOT NULL,
    payload    TEXT NOT NULL CHECK (payload IN ('event', 'fhir')),
    secret     TEXT,
    origin     TEXT NOT NULL CHECK (origin IN ('config', 'api')),
    -- The last change event fanned out to this subscription.
    through    BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE subscription_deliveries (
    id           TEXT PRIMARY KEY,
    subscription TEXT NOT NULL,
    event_seq    BIGINT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'queued', 'delivered', 'failed')),
    -- POSTs made so far, and the last one's HTTP status or error (no body is kept).
    attempts     BIGINT NOT NULL DEFAULT 0,
    detail       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (subscription, event_seq)
);
CREATE INDEX subscription_deliveries_status ON subscription_deliveries (status, event_seq);
