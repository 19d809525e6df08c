-- Retention of raw message bodies (docs/operations.md): a pruned message keeps every metadata
-- column (and its content hash, so that a resend is still recognised as a duplicate); its raw
-- body becomes empty and this column says when. NULL: the body is still there.
ALTER TABLE messages ADD COLUMN body_pruned_at TEXT;
