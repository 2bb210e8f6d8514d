-- Ostiary schema version 1: identities and the audit chain.
-- Times are integer microseconds since the Unix epoch, UTC; NULL means never.

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    service    INTEGER NOT NULL DEFAULT 0 CHECK (service IN (0, 1)),
    disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL
) STRICT;

CREATE TABLE roles (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    builtin    INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE role_grants (
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    grant_text TEXT NOT NULL,
    PRIMARY KEY (role_id, grant_text)
) STRICT, WITHOUT ROWID;

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, role_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    hash         BLOB    NOT NULL,
    scoped       INTEGER NOT NULL DEFAULT 0 CHECK (scoped IN (0, 1)),
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE key_scopes (
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    grant_text TEXT NOT NULL,
    PRIMARY KEY (key_id, grant_text)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_records (
    seq        INTEGER PRIMARY KEY,
    time       INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    remote     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    prev       BLOB    NOT NULL,
    hash       BLOB    NOT NULL
) STRICT;

CREATE INDEX audit_records_actor ON audit_records (actor, seq);
CREATE INDEX audit_records_event ON audit_records (event, seq);
CREATE INDEX audit_records_time ON audit_records (time);
CREATE INDEX audit_records_request ON audit_records (request_id);

CREATE TABLE audit_checkpoints (
    seq    INTEGER PRIMARY KEY,
    hash   BLOB    NOT NULL,
    time   INTEGER NOT NULL,
    key_id TEXT    NOT NULL,
    sig    BLOB    NOT NULL
) STRICT;
