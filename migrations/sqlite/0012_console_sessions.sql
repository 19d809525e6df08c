-- The operator console's sessions (docs/operations.md#the-console). The cookie carries a random
-- secret; only its SHA-256 is stored, so a copy of the store opens no session. A session opened
-- with a token ends when the token is revoked or expires (the look-up joins api_tokens).
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,           -- SHA-256 of the cookie's secret, hex
    subject      TEXT NOT NULL,              -- token:<id> or oidc:<subject>
    token_id     TEXT,                       -- the token the session was opened with
    role         TEXT NOT NULL,
    csrf         TEXT NOT NULL,              -- the token every form of the session carries
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
