-- Ostiary schema version 20: governance alerts and access reviews.
-- An alert is raised by a rule over the audit records (or by an overdue
-- review item), delivered to its owner's route, acknowledged by a person
-- or escalated to a second route. alert_seen holds what first-use and
-- egress rules have already seen, so a restart does not report it again.
-- A review campaign has one item per identity in its scope, with the
-- facts the reviewer saw (roles, tools, keys, last use) frozen at start.

CREATE TABLE alerts (
    id           TEXT    PRIMARY KEY,
    rule         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    tool         TEXT    NOT NULL DEFAULT '',
    summary      TEXT    NOT NULL,
    facts        TEXT    NOT NULL, -- JSON object: counts, tool, host; never argument values
    route        TEXT    NOT NULL,
    escalate_to  TEXT    NOT NULL,
    raised_at    INTEGER NOT NULL,
    escalate_at  INTEGER NOT NULL,
    escalated_at INTEGER,
    acked_by     TEXT,
    acked_at     INTEGER,
    ack_reason   TEXT
) STRICT;

CREATE INDEX alerts_due ON alerts (escalate_at) WHERE acked_at IS NULL AND escalated_at IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_at);

CREATE TABLE alert_seen (
    rule     TEXT    NOT NULL,
    subject  TEXT    NOT NULL,
    object   TEXT    NOT NULL,
    first_at INTEGER NOT NULL,
    PRIMARY KEY (rule, subject, object)
) STRICT, WITHOUT ROWID;

CREATE TABLE reviews (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL, -- all, role:R or user:U
    reviewers  TEXT    NOT NULL, -- JSON array of user names
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    due_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE review_items (
    id           TEXT    PRIMARY KEY,
    review_id    TEXT    NOT NULL REFERENCES reviews (id) ON DELETE CASCADE,
    identity     TEXT    NOT NULL, -- user name
    facts        TEXT    NOT NULL, -- JSON: what the reviewer is asked to judge, as of the start
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'attested')),
    decision     TEXT    NOT NULL DEFAULT '' CHECK (decision IN ('', 'keep', 'revoke')),
    revoked      TEXT    NOT NULL DEFAULT '[]', -- JSON array of grants revoked (role:R, key:K)
    reason       TEXT    NOT NULL DEFAULT '',
    attested_by  TEXT    NOT NULL DEFAULT '',
    attested_at  INTEGER,
    overdue_at   INTEGER, -- when it was found overdue (and alerted)
    UNIQUE (review_id, identity)
) STRICT;

CREATE INDEX review_items_pending ON review_items (status, review_id);
