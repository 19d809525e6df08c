-- Access control: API tokens (stored hashed) and the hash-chained audit log (docs/security.md).

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,           -- public id (tok_…), shown by `token list`
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,       -- SHA-256 of the secret, hex; the secret is never stored
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT
);

-- One row per audited request or action. Rows are chained: `hash` is the SHA-256 of the
-- previous row's hash and this row's content; ids are given in order without gaps under the
-- writer's lock, so a changed, removed or reordered row breaks the chain (`carehub audit verify`).
CREATE TABLE audit_log (
    id           BIGINT PRIMARY KEY,
    at           TEXT NOT NULL,
    subject      TEXT NOT NULL,
    role         TEXT NOT NULL,
    action       TEXT NOT NULL,
    status       BIGINT NOT NULL,
    persons      TEXT NOT NULL,              -- JSON array of person ids
    person_count BIGINT NOT NULL,
    purpose      TEXT,
    client       TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (subject, id);

-- Which persons a row names, for "who saw this patient": an index of audit_log.persons.
CREATE TABLE audit_persons (
    person_id    TEXT NOT NULL,
    audit_id     BIGINT NOT NULL,
    PRIMARY KEY (person_id, audit_id)
);
