-- Ostiary schema version 8: call timeouts per upstream and per tool, under
-- the server's overall bound (serve --call-timeout). 0 means "not set".

ALTER TABLE upstreams ADD COLUMN call_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (call_timeout_ms >= 0);
ALTER TABLE catalog_tools ADD COLUMN call_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (call_timeout_ms >= 0);
