-- A new kind of blocking key (both names and the birth year, identity/blocking.rs): every
-- stored record is indexed again at the next start (`backfill_match_keys`, before any source
-- starts; existing keys are kept, the new ones added).
UPDATE identity_state SET keys_through = 0;
