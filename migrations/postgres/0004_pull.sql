-- carehub store, version 4: pull connectors (FHIR R4).
--
-- connector_cursors: for each pull connector and resource type, the meta.lastUpdated up to which
-- everything has been read. It is written in the same transaction as the last record of each
-- page, so a crash re-reads at most one page (whose records are then duplicates).
CREATE TABLE connector_cursors (
    connector     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    cursor        TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (connector, resource_type)
);

-- One row per run of a pull connector: when, what it read, how it ended.
CREATE TABLE connector_runs (
    id             BIGSERIAL PRIMARY KEY,
    connector      TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'interrupted')),
    pages          BIGINT NOT NULL DEFAULT 0,
    resources      BIGINT NOT NULL DEFAULT 0,
    errors         BIGINT NOT NULL DEFAULT 0,
    cursor_before  TEXT,
    cursor_after   TEXT,
    detail         TEXT
);
CREATE INDEX connector_runs_by_connector ON connector_runs (connector, id);
