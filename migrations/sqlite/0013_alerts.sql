-- Alerts to ops (docs/operations.md#alerts) and the readiness probe's write.
--
-- One row per alert key (the alert's name, or name:connector for one instance of it). Every
-- replica evaluates the same rules from the store; a change of state is written with a
-- compare-and-set on `version`, and only the replica whose write took sends the message, so an
-- alert is sent once however many replicas run. Texts carry no patient data.
CREATE TABLE alerts (
    key           TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    summary       TEXT NOT NULL,
    fired_at      TEXT NOT NULL,
    resolved_at   TEXT,
    -- When a message about this alert last went out (RFC 3339), for the cool-down.
    last_sent_at  TEXT,
    -- 1 when the current firing was announced (a resolved message follows only then).
    announced     INTEGER NOT NULL DEFAULT 0,
    version       INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL
);
CREATE INDEX alerts_state ON alerts (state, resolved_at);

-- `/readyz` proves the store takes writes by writing this row.
CREATE TABLE readiness_probe (
    id  INTEGER PRIMARY KEY,
    at  TEXT NOT NULL
);
