-- Ostiary schema version 5: the vault. Values are AES-256-GCM ciphertexts
-- under a data key that is itself stored only wrapped by the master key.

CREATE TABLE vault_keys (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    wrapped BLOB    NOT NULL
) STRICT;

CREATE TABLE secrets (
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    upstreams     TEXT    NOT NULL, -- JSON array of upstream names
    nonce         BLOB    NOT NULL,
    ciphertext    BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    last_accessed INTEGER,
    PRIMARY KEY (name, version)
) STRICT, WITHOUT ROWID;
