-- Ostiary schema version 18: reviewed changes. A change to a governed
-- object (the policy, a tool's pinned version, a tool's labels, a user's
-- roles) whose kind
-- requires review is a proposal: its author, reason, base version, exact
-- diff, gate results and votes (body, JSON), and its state. result is the
-- version an applied proposal produced (what a rollback's fast path asks:
-- was that version reviewed?).
CREATE TABLE proposals (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('policy', 'tool-version', 'tool-labels', 'user-roles')),
    object     TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('open', 'applied', 'rejected', 'withdrawn', 'superseded')),
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    result     TEXT NOT NULL DEFAULT '',
    body       TEXT NOT NULL
) STRICT;
CREATE INDEX proposals_object ON proposals (object, state);
CREATE INDEX proposals_created ON proposals (created_at);
