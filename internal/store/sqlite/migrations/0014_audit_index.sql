-- Ostiary schema version 14: the audit chain's durable copy is the log
-- under DIR/audit/ (internal/audit/wal); audit_records becomes its index,
-- filled behind the writer. audit_index.through is the last seq up to which
-- every record is indexed (records of changes are indexed in the change's
-- own transaction, so rows beyond it may exist). reconciled is the last seq
-- up to which every change's record is known to have its change applied or
-- a change-not-applied record citing it: audit reindex empties the index
-- but keeps it, so a rebuild cut short never makes applied changes look
-- unapplied. A database from before the
-- log holds the whole chain: it is indexed through its last record, and the
-- first start copies it into the log.

CREATE TABLE audit_index (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through    INTEGER NOT NULL CHECK (through >= 0),
    reconciled INTEGER NOT NULL CHECK (reconciled >= 0)
);
INSERT INTO audit_index (id, through, reconciled) SELECT 1, COALESCE(MAX(seq), 0), COALESCE(MAX(seq), 0) FROM audit_records;
