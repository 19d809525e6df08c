-- carehub store, version 3: clinical records (encounters, appointments, orders, results,
-- diagnoses) and each person's timeline.
--
-- A record is recognised by (kind, source_system, record_key): the patient's source record key
-- and the visit number, appointment id, order number and test code… that a later message
-- about the same record repeats. That message updates the record, its fields over the stored
-- ones (a reschedule, a cancellation, a corrected result). Records are
-- filed under the person their message was applied to; a merge does not move them: a person's
-- timeline also reads the records of the persons merged into it, so an unmerge is exact.
CREATE TABLE clinical_records (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('encounter', 'appointment', 'order', 'result', 'diagnosis')),
    source_system    TEXT NOT NULL,
    record_key       TEXT NOT NULL,
    person_id        TEXT,
    status           TEXT,
    -- The record's time as the source gave it, and as a key that sorts in time order (UTC).
    at               TEXT,
    sort_at          TEXT,
    -- The test, diagnosis or service it is about: system|code.
    code             TEXT,
    data             TEXT NOT NULL,
    first_message_id BIGINT NOT NULL,
    last_message_id  BIGINT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (kind, source_system, record_key)
);
CREATE INDEX clinical_records_person ON clinical_records (person_id, sort_at);
CREATE INDEX clinical_records_upcoming ON clinical_records (kind, sort_at);
-- The timeline walks merges down from a survivor.
CREATE INDEX persons_merged_into ON persons (merged_into);

-- Identity instructions a message carried (ADT^A40): what they asked and what was done.
CREATE TABLE merge_requests (
    id          BIGSERIAL PRIMARY KEY,
    message_id  BIGINT NOT NULL,
    survivor_id TEXT,
    retired     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
