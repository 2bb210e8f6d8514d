-- Ostiary schema version 9: environments (dev / test / prod segmentation).
-- A key belongs to one environment; a secret has its own series of versions
-- in each environment, and ${secret:NAME} resolves to the value of the
-- calling key's environment. Everything that existed before is in
-- "default".

ALTER TABLE api_keys ADD COLUMN environment TEXT NOT NULL DEFAULT 'default';

CREATE TABLE secrets_v9 (
    name          TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    upstreams     TEXT    NOT NULL, -- JSON array of upstream names
    nonce         BLOB    NOT NULL,
    ciphertext    BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL,
    last_accessed INTEGER,
    PRIMARY KEY (name, environment, version)
) STRICT, WITHOUT ROWID;

INSERT INTO secrets_v9 (name, environment, version, upstreams, nonce, ciphertext, created_at, created_by, last_accessed)
    SELECT name, 'default', version, upstreams, nonce, ciphertext, created_at, created_by, last_accessed FROM secrets;
DROP TABLE secrets;
ALTER TABLE secrets_v9 RENAME TO secrets;
