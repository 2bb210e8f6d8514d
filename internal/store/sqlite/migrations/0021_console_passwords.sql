-- Ostiary schema version 21: console passwords.
-- A user who signs in to the web console has an argon2id hash here (PHC
-- string, never the password). Deleting the user deletes the password.

CREATE TABLE console_passwords (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash    TEXT    NOT NULL CHECK (hash LIKE '$argon2id$%'),
    set_at  INTEGER NOT NULL,
    set_by  TEXT    NOT NULL
) STRICT;
