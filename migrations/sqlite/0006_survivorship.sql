-- carehub store, version 6: survivorship rules.
--
-- The golden record of every person is derived from its source records by the rules in
-- `identity.survivorship`. golden_rules holds those rules (JSON) as the golden records were last
-- derived with; when the hub starts with different rules it derives them all again.
ALTER TABLE identity_state ADD COLUMN golden_rules TEXT;
