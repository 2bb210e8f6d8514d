-- Ostiary's PostgreSQL schema, version 1: the same tables as SQLite's
-- schema version 20 (internal/store/sqlite/migrations), in PostgreSQL's
-- types. Times are integer microseconds since the Unix epoch, UTC, as in
-- SQLite, so both stores convert them alike; NULL means never.

CREATE TABLE users (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    service    BOOLEAN NOT NULL DEFAULT false,
    disabled   BOOLEAN NOT NULL DEFAULT false,
    owner      TEXT    NOT NULL DEFAULT '',
    created_at BIGINT  NOT NULL,
    created_by TEXT    NOT NULL
);

CREATE TABLE roles (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    builtin    BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT  NOT NULL
);

CREATE TABLE role_grants (
    role_id    BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    grant_text TEXT   NOT NULL,
    PRIMARY KEY (role_id, grant_text)
);

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE api_keys (
    id           TEXT    PRIMARY KEY,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    hash         BYTEA   NOT NULL,
    scoped       BOOLEAN NOT NULL DEFAULT false,
    environment  TEXT    NOT NULL DEFAULT 'default',
    created_at   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);

CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE key_scopes (
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    grant_text TEXT NOT NULL,
    PRIMARY KEY (key_id, grant_text)
);

-- The index of the audit chain, whose durable copy is the log
-- (internal/audit/wal); see SQLite's migration 0014 for audit_index.
CREATE TABLE audit_records (
    seq        BIGINT PRIMARY KEY CHECK (seq > 0),
    time       BIGINT NOT NULL,
    event      TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    key_id     TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    remote     TEXT   NOT NULL,
    target     TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    prev       BYTEA  NOT NULL,
    hash       BYTEA  NOT NULL
);

CREATE INDEX audit_records_actor ON audit_records (actor, seq);
CREATE INDEX audit_records_event ON audit_records (event, seq);
CREATE INDEX audit_records_time ON audit_records (time);
CREATE INDEX audit_records_request ON audit_records (request_id);

CREATE TABLE audit_checkpoints (
    seq    BIGINT PRIMARY KEY,
    hash   BYTEA  NOT NULL,
    time   BIGINT NOT NULL,
    key_id TEXT   NOT NULL,
    sig    BYTEA  NOT NULL
);

CREATE TABLE audit_index (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    through    BIGINT  NOT NULL CHECK (through >= 0),
    reconciled BIGINT  NOT NULL CHECK (reconciled >= 0)
);
INSERT INTO audit_index (id, through, reconciled) VALUES (1, 0, 0);

CREATE TABLE upstreams (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    prefix           TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('http', 'stdio')),
    url              TEXT    NOT NULL DEFAULT '',
    headers          TEXT    NOT NULL DEFAULT '{}', -- JSON object; values are never returned by the API
    command          TEXT    NOT NULL DEFAULT '[]', -- JSON array: program and arguments
    env              TEXT    NOT NULL DEFAULT '{}', -- JSON object
    created_at       BIGINT  NOT NULL,
    created_by       TEXT    NOT NULL,
    allow_private    BOOLEAN NOT NULL DEFAULT false,
    tls              TEXT    NOT NULL DEFAULT '{}',
    call_timeout_ms  BIGINT  NOT NULL DEFAULT 0 CHECK (call_timeout_ms >= 0),
    on_change        TEXT    NOT NULL DEFAULT 'refuse' CHECK (on_change IN ('refuse', 'keep-pinned')),
    synced_at        BIGINT,
    allow_plain_http BOOLEAN NOT NULL DEFAULT false,
    openapi          TEXT    NOT NULL DEFAULT '',
    token_exchange   TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE catalog_tools (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upstream_id      BIGINT NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
    name             TEXT   NOT NULL,
    vanished_at      BIGINT,
    call_timeout_ms  BIGINT NOT NULL DEFAULT 0 CHECK (call_timeout_ms >= 0),
    labels           TEXT,
    labelled_at      BIGINT,
    labelled_by      TEXT,
    presented_digest TEXT,
    reviewed_digest  TEXT,
    changed_at       BIGINT,
    UNIQUE (upstream_id, name)
);

CREATE TABLE tool_versions (
    tool_id      BIGINT NOT NULL REFERENCES catalog_tools (id) ON DELETE CASCADE,
    version      BIGINT NOT NULL,
    digest       TEXT   NOT NULL,
    definition   TEXT   NOT NULL,
    status       TEXT   NOT NULL CHECK (status IN ('active', 'pending', 'superseded')),
    seen_at      BIGINT NOT NULL,
    activated_at BIGINT,
    activated_by TEXT,
    flags        TEXT   NOT NULL DEFAULT '[]',
    PRIMARY KEY (tool_id, version),
    UNIQUE (tool_id, digest)
);

CREATE UNIQUE INDEX tool_versions_one_active ON tool_versions (tool_id) WHERE status = 'active';

CREATE TABLE killswitches (
    id             TEXT   PRIMARY KEY,
    kind           TEXT   NOT NULL CHECK (kind IN ('tool', 'upstream', 'user', 'key', 'all')),
    target         TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    engaged_by     TEXT   NOT NULL,
    engaged_at     BIGINT NOT NULL,
    released_by    TEXT,
    released_at    BIGINT,
    release_reason TEXT
);

CREATE INDEX killswitches_active ON killswitches (released_at);

CREATE TABLE vault_wraps (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wrapped    BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    key_id     BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE secrets (
    name          TEXT   NOT NULL,
    environment   TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    upstreams     TEXT   NOT NULL, -- JSON array of upstream names
    nonce         BYTEA  NOT NULL,
    ciphertext    BYTEA  NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT   NOT NULL,
    last_accessed BIGINT,
    key_id        BIGINT NOT NULL DEFAULT 1,
    rotate_every  BIGINT,
    rotate_now    TEXT,
    alerted_at    BIGINT,
    kill_switches TEXT,
    PRIMARY KEY (name, environment, version)
);

CREATE INDEX secrets_by_key ON secrets (key_id);

CREATE TABLE policies (
    version     BIGINT PRIMARY KEY,
    source      TEXT   NOT NULL,
    digest      TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    rules       BIGINT NOT NULL,
    tests       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL
);

CREATE TABLE approvals (
    id              TEXT   PRIMARY KEY,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
    requester       TEXT   NOT NULL,
    requester_owner TEXT   NOT NULL DEFAULT '',
    key_id          TEXT   NOT NULL,
    tool            TEXT   NOT NULL,
    upstream        TEXT   NOT NULL,
    tool_version    BIGINT NOT NULL,
    tool_digest     TEXT   NOT NULL,
    args_sha256     TEXT   NOT NULL,
    args            TEXT   NOT NULL,
    decision        TEXT   NOT NULL,
    request_id      TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    decided_at      BIGINT,
    used_at         BIGINT
);

CREATE INDEX approvals_match ON approvals (requester, tool, tool_digest, args_sha256, status);
CREATE INDEX approvals_status ON approvals (status, expires_at);

CREATE TABLE approval_votes (
    approval_id TEXT    NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    approver    TEXT    NOT NULL,
    roles       TEXT    NOT NULL,
    approve     BOOLEAN NOT NULL,
    reason      TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    PRIMARY KEY (approval_id, approver)
);

CREATE TABLE idp_subjects (
    issuer     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX idp_subjects_user ON idp_subjects (user_id);

CREATE TABLE idp_group_roles (
    grp        TEXT   NOT NULL,
    role_id    BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    PRIMARY KEY (grp, role_id)
);

CREATE TABLE proposals (
    id         TEXT   PRIMARY KEY,
    kind       TEXT   NOT NULL CHECK (kind IN ('policy', 'tool-version', 'tool-labels', 'user-roles')),
    object     TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('open', 'applied', 'rejected', 'withdrawn', 'superseded')),
    author     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    result     TEXT   NOT NULL DEFAULT '',
    body       TEXT   NOT NULL
);
CREATE INDEX proposals_object ON proposals (object, state);
CREATE INDEX proposals_created ON proposals (created_at);

CREATE TABLE alerts (
    id           TEXT   PRIMARY KEY,
    rule         TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    tool         TEXT   NOT NULL DEFAULT '',
    summary      TEXT   NOT NULL,
    facts        TEXT   NOT NULL,
    route        TEXT   NOT NULL,
    escalate_to  TEXT   NOT NULL,
    raised_at    BIGINT NOT NULL,
    escalate_at  BIGINT NOT NULL,
    escalated_at BIGINT,
    acked_by     TEXT,
    acked_at     BIGINT,
    ack_reason   TEXT
);

CREATE INDEX alerts_due ON alerts (escalate_at) WHERE acked_at IS NULL AND escalated_at IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_at);

CREATE TABLE alert_seen (
    rule     TEXT   NOT NULL,
    subject  TEXT   NOT NULL,
    object   TEXT   NOT NULL,
    first_at BIGINT NOT NULL,
    PRIMARY KEY (rule, subject, object)
);

CREATE TABLE reviews (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    reviewers  TEXT   NOT NULL,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    due_at     BIGINT NOT NULL
);

CREATE TABLE review_items (
    id          TEXT   PRIMARY KEY,
    review_id   TEXT   NOT NULL REFERENCES reviews (id) ON DELETE CASCADE,
    identity    TEXT   NOT NULL,
    facts       TEXT   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('pending', 'attested')),
    decision    TEXT   NOT NULL DEFAULT '' CHECK (decision IN ('', 'keep', 'revoke')),
    revoked     TEXT   NOT NULL DEFAULT '[]',
    reason      TEXT   NOT NULL DEFAULT '',
    attested_by TEXT   NOT NULL DEFAULT '',
    attested_at BIGINT,
    overdue_at  BIGINT,
    UNIQUE (review_id, identity)
);

CREATE INDEX review_items_pending ON review_items (status, review_id);
