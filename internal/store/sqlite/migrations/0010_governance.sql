-- Ostiary schema version 10: governance labels on tools and versioned
-- policies.

-- Ostiary's own labels of a tool (JSON: data classes, risk tier,
-- irreversible, egress, owner, approval demand). NULL: not labelled, the
-- upstream's annotations stand in as hints.
ALTER TABLE catalog_tools ADD COLUMN labels TEXT;
ALTER TABLE catalog_tools ADD COLUMN labelled_at INTEGER;
ALTER TABLE catalog_tools ADD COLUMN labelled_by TEXT;

-- Every policy ever set; the highest version is in force.
CREATE TABLE policies (
    version     INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    digest      TEXT    NOT NULL, -- SHA-256 of source
    description TEXT    NOT NULL DEFAULT '',
    rules       INTEGER NOT NULL,
    tests       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL
) STRICT;
