-- Ostiary schema version 16: secrets over their whole life.
--
-- Rotation: each version may carry a schedule (rotate_every, seconds), a
-- rotate-now mark (JSON: when, by whom, why: a compromise or a staff
-- change) and when its overdue alert was last recorded; a new version
-- starts clean. The kill switches engaged because a version was
-- compromised are kept with it, to be released once it is replaced.
--
-- Data-key rotation: there may be several data keys while values are
-- re-encrypted (key_id on each wrapping and each value; key 1 is the
-- original); key_id 0 is the audit search-token key, kept wrapped once the
-- first data key is to be retired, so that tokens outlive it.

ALTER TABLE vault_wraps ADD COLUMN key_id INTEGER NOT NULL DEFAULT 1;

ALTER TABLE secrets ADD COLUMN key_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE secrets ADD COLUMN rotate_every INTEGER;
ALTER TABLE secrets ADD COLUMN rotate_now TEXT;
ALTER TABLE secrets ADD COLUMN alerted_at INTEGER;
ALTER TABLE secrets ADD COLUMN kill_switches TEXT;

CREATE INDEX secrets_by_key ON secrets (key_id);
