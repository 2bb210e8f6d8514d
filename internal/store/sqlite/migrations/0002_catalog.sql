-- Ostiary schema version 2: upstreams and the pinned tool catalog.

CREATE TABLE upstreams (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('http', 'stdio')),
    url        TEXT    NOT NULL DEFAULT '',
    headers    TEXT    NOT NULL DEFAULT '{}', -- JSON object; values are never returned by the API
    command    TEXT    NOT NULL DEFAULT '[]', -- JSON array: program and arguments
    env        TEXT    NOT NULL DEFAULT '{}', -- JSON object
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL
) STRICT;

-- One row per tool an upstream has ever presented.
CREATE TABLE catalog_tools (
    id          INTEGER PRIMARY KEY,
    upstream_id INTEGER NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL, -- the upstream's own name
    vanished_at INTEGER,          -- set while the upstream no longer lists it
    UNIQUE (upstream_id, name)
) STRICT;

-- Every distinct definition of a tool. Exactly one per tool is active: the
-- pinned contract clients see and arguments are checked against.
CREATE TABLE tool_versions (
    tool_id      INTEGER NOT NULL REFERENCES catalog_tools (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    digest       TEXT    NOT NULL, -- SHA-256 of definition
    definition   TEXT    NOT NULL, -- canonical JSON (RFC 8785)
    status       TEXT    NOT NULL CHECK (status IN ('active', 'pending', 'superseded')),
    seen_at      INTEGER NOT NULL,
    activated_at INTEGER,
    activated_by TEXT,
    PRIMARY KEY (tool_id, version),
    UNIQUE (tool_id, digest)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX tool_versions_one_active ON tool_versions (tool_id) WHERE status = 'active';
