-- Ostiary schema version 11: approvals. A call the policy holds becomes an
-- approval request bound to its requester, the tool version and the
-- canonical arguments; people vote on it; an approved request is used by
-- exactly one identical call. A service account may name the person who
-- owns it, who then can no more approve its requests than their own.

ALTER TABLE users ADD COLUMN owner TEXT NOT NULL DEFAULT ''; -- service accounts: the owning human's name

CREATE TABLE approvals (
    id             TEXT    PRIMARY KEY,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'used')),
    requester      TEXT    NOT NULL, -- user name
    requester_owner TEXT   NOT NULL DEFAULT '', -- the requester's owner, if a service account has one
    key_id         TEXT    NOT NULL, -- the key the request came with
    tool           TEXT    NOT NULL, -- exposed name
    upstream       TEXT    NOT NULL,
    tool_version   INTEGER NOT NULL,
    tool_digest    TEXT    NOT NULL,
    args_sha256    TEXT    NOT NULL, -- of the RFC 8785 canonical arguments
    args           TEXT    NOT NULL, -- the canonical arguments, for approvers to read
    decision       TEXT    NOT NULL, -- JSON: the policy decision (score, reasons, version, requirements)
    request_id     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    decided_at     INTEGER,
    used_at        INTEGER
) STRICT;

CREATE INDEX approvals_match ON approvals (requester, tool, tool_digest, args_sha256, status);
CREATE INDEX approvals_status ON approvals (status, expires_at);

CREATE TABLE approval_votes (
    approval_id TEXT    NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    approver    TEXT    NOT NULL,
    roles       TEXT    NOT NULL, -- JSON array: the approver's roles when voting
    approve     INTEGER NOT NULL CHECK (approve IN (0, 1)),
    reason      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (approval_id, approver)
) STRICT, WITHOUT ROWID;
