-- Ostiary schema version 4: upstreams must be allowed explicitly to reach
-- non-public addresses (SSRF guard).

ALTER TABLE upstreams ADD COLUMN allow_private INTEGER NOT NULL DEFAULT 0 CHECK (allow_private IN (0, 1));
