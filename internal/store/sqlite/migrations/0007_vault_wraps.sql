-- Ostiary schema version 7: the data key may be wrapped by more than one
-- master key, so that a master key is rotated without downtime: wrap under
-- the new key, move servers to it, then retire the old wrapping.

CREATE TABLE vault_wraps (
    id         INTEGER PRIMARY KEY,
    wrapped    BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

INSERT INTO vault_wraps (wrapped, created_at) SELECT wrapped, 0 FROM vault_keys;
DROP TABLE vault_keys;
