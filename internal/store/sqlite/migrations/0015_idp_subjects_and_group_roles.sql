-- Ostiary schema version 15: sign-in with an OpenID provider. A token's
-- (issuer, subject) is linked to one Ostiary user, created on first use or
-- linked by an admin; a group named in a token's groups claim maps to
-- roles. Both are read on every token request (through a cache dropped on
-- any identity change), so an unlinked subject or a removed mapping counts
-- from the next request.

CREATE TABLE idp_subjects (
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT, WITHOUT ROWID;

CREATE INDEX idp_subjects_user ON idp_subjects (user_id);

CREATE TABLE idp_group_roles (
    grp        TEXT    NOT NULL,
    role_id    INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (grp, role_id)
) STRICT, WITHOUT ROWID;
