-- Ostiary schema version 6: how an https upstream is verified (CA bundle,
-- loopback-only verification off) and the client certificate presented to
-- it. JSON; the client key itself is a vault secret, named here.

ALTER TABLE upstreams ADD COLUMN tls TEXT NOT NULL DEFAULT '{}';
