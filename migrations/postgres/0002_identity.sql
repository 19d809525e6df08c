-- carehub store, version 2: probabilistic matching, the review queue, merges.
--
-- match_keys: the blocking keys of each source record's latest patch, hashed to 64 bits (they
-- are normalised personal data: only equality is ever asked of them). An incoming record is
-- compared only with the source records that share a key with it.
CREATE TABLE match_keys (
    key              BIGINT NOT NULL,
    source_record_id BIGINT NOT NULL,
    PRIMARY KEY (key, source_record_id)
);

-- How each source record came to its person: identifier, match (with its score breakdown),
-- new, review (a new person waiting for a human), or a merge.
ALTER TABLE source_records ADD COLUMN link_method TEXT;
ALTER TABLE source_records ADD COLUMN link_score DOUBLE PRECISION;
ALTER TABLE source_records ADD COLUMN link_detail TEXT;

-- A person merged into another keeps its row (and id) so that an unmerge restores it.
ALTER TABLE persons ADD COLUMN merged_into TEXT;

-- Possible duplicates for a human: the person an incoming record created, and the existing
-- person it resembles.
CREATE TABLE review_items (
    id            BIGSERIAL PRIMARY KEY,
    person_id     TEXT NOT NULL,
    candidate_id  TEXT NOT NULL,
    message_id    BIGINT,
    score         DOUBLE PRECISION NOT NULL,
    breakdown     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'linked', 'rejected')),
    created_at    TEXT NOT NULL,
    decided_at    TEXT
);
CREATE INDEX review_items_open ON review_items(status, id);

-- Merges, undoable: which source records moved from `merged_id` to `survivor_id`.
CREATE TABLE merges (
    id                 BIGSERIAL PRIMARY KEY,
    survivor_id        TEXT NOT NULL,
    merged_id          TEXT NOT NULL,
    source_record_ids  TEXT NOT NULL,        -- JSON array
    reason             TEXT NOT NULL,        -- review, api, hl7-a40, fhir-link
    survivor_profile   TEXT NOT NULL,        -- both golden records as they were, so that an
    merged_profile     TEXT NOT NULL,        -- unmerge restores them exactly
    message_watermark  BIGINT NOT NULL,       -- the newest message at merge time: later ones are replayed
    created_at         TEXT NOT NULL,
    undone_at          TEXT
);
CREATE INDEX merges_survivor ON merges(survivor_id, id);

-- How far the blocking keys are complete: every source record with an id up to keys_through
-- has its keys in match_keys. Records stored before this migration, or while matching was
-- off, get theirs when the hub next starts with matching on.
CREATE TABLE identity_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    keys_through  BIGINT NOT NULL
);
INSERT INTO identity_state (id, keys_through) VALUES (1, 0);
