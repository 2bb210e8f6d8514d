-- Ostiary schema version 12: review at the catalog's edges. A tool whose
-- upstream presents a definition other than the pinned one is refused
-- until reviewed (unless its upstream keeps calling under the pinned one);
-- tools that appear after an upstream's first sync wait for review; every
-- version carries the reasons it was flagged for the reviewer.

-- What a changed definition does to calls: 'refuse' them until an
-- activation, or 'keep-pinned' (call under the pinned definition).
ALTER TABLE upstreams ADD COLUMN on_change TEXT NOT NULL DEFAULT 'refuse' CHECK (on_change IN ('refuse', 'keep-pinned'));
-- The first successful sync (NULL: none yet): only that one activates what
-- it finds. Upstreams from before this version have been synced.
ALTER TABLE upstreams ADD COLUMN synced_at INTEGER;
UPDATE upstreams SET synced_at = created_at;

-- presented_digest: the definition the upstream presented at the last
-- sync. changed_at: set when that differed from the pinned one and from
-- reviewed_digest (calls refused); cleared by an activation, which sets
-- reviewed_digest to what was presented then.
ALTER TABLE catalog_tools ADD COLUMN presented_digest TEXT;
ALTER TABLE catalog_tools ADD COLUMN reviewed_digest TEXT;
ALTER TABLE catalog_tools ADD COLUMN changed_at INTEGER;

-- Why a version was flagged for the reviewer: a JSON array of reason codes
-- (instruction-like content in its description or schema).
ALTER TABLE tool_versions ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
