-- Ostiary schema version 3: kill switches.

CREATE TABLE killswitches (
    id             TEXT    PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('tool', 'upstream', 'user', 'key', 'all')),
    target         TEXT    NOT NULL, -- tool name, upstream name, user name, key id, or '*'
    reason         TEXT    NOT NULL,
    engaged_by     TEXT    NOT NULL,
    engaged_at     INTEGER NOT NULL,
    released_by    TEXT,
    released_at    INTEGER,
    release_reason TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX killswitches_active ON killswitches (released_at);
