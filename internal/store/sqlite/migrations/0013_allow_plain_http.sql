-- Ostiary schema version 13: an http:// upstream is reached at a
-- non-loopback address only when an admin allowed it explicitly
-- (--allow-plain-http). Upstreams stored before default to 0: one reached
-- over plain HTTP off loopback is refused when dialled until it is added
-- again with the flag, so that the permission is on record.

ALTER TABLE upstreams ADD COLUMN allow_plain_http INTEGER NOT NULL DEFAULT 0 CHECK (allow_plain_http IN (0, 1));
