package sqlite

import (
	"context"
	"database/sql"

	"github.com/ostiary/ostiary/internal/audit"
)

// The audit index: audit_records filled from the log behind the writer
// (audit/DESIGN.md). Rows are keyed by seq, so indexing is idempotent.

var _ audit.Index = (*Store)(nil)

const indexRecord = `INSERT INTO audit_records
	(seq, time, event, outcome, reason, actor, key_id, request_id, remote, target, detail, prev, hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`

// IndexedThrough returns the seq up to which every record is indexed, and
// up to which changes were reconciled.
func (s *Store) IndexedThrough(ctx context.Context) (through, reconciled uint64, err error) {
	ctx, cancel := bounded(ctx, s.timeout)
	defer cancel()
	err = s.r.QueryRowContext(ctx, "SELECT through, reconciled FROM audit_index WHERE id = 1").Scan(&through, &reconciled)
	return through, reconciled, classify("audit index position", err)
}

// IndexRecords inserts recs, keeping any row already there (a change's
// record is indexed in the change's own transaction), and records that
// every record up to through is indexed, in one transaction.
func (s *Store) IndexRecords(ctx context.Context, recs []*audit.Record, through uint64) error {
	if err := s.writable("audit index"); err != nil {
		return err
	}
	wctx, wcancel := bounded(ctx, s.timeout)
	defer wcancel()
	tx, done, err := s.begin(wctx)
	if err != nil {
		return s.wrote(classify("begin", err))
	}
	defer done()
	// A storage failure may have fenced the store while this waited for
	// the connection: nothing is written after it.
	if err := s.writable("audit index"); err != nil {
		tx.Rollback()
		return err
	}
	if err := indexInto(ctx, tx, recs, through); err != nil {
		tx.Rollback()
		return s.wrote(err)
	}
	return s.wrote(classify("commit", tx.Commit()))
}

func indexInto(ctx context.Context, tx *sql.Tx, recs []*audit.Record, through uint64) error {
	ctx = context.WithoutCancel(ctx)
	if len(recs) > 0 {
		st, err := tx.PrepareContext(ctx, indexRecord)
		if err != nil {
			return classify("prepare audit index", err)
		}
		defer st.Close()
		for _, r := range recs {
			detail, err := r.DetailJSON()
			if err != nil {
				return err
			}
			if _, err := st.ExecContext(ctx, int64(r.Seq), r.Time.UnixMicro(), r.Event, string(r.Outcome), r.Reason, r.Actor,
				r.KeyID, r.RequestID, r.Remote, r.Target, detail, r.Prev[:], r.Hash[:]); err != nil {
				return classify("index audit record", err)
			}
		}
	}
	_, err := tx.ExecContext(ctx, "UPDATE audit_index SET through = ?1, reconciled = max(reconciled, ?1) WHERE id = 1 AND through < ?1", int64(through))
	return classify("audit index position", err)
}

// AuditIndexed reports whether record seq has a row.
func (s *Store) AuditIndexed(ctx context.Context, seq uint64) (bool, error) {
	ctx, cancel := bounded(ctx, s.timeout)
	defer cancel()
	var one int
	err := s.r.QueryRowContext(ctx, "SELECT 1 FROM audit_records WHERE seq = ?", int64(seq)).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, classify("audit index", err)
}

// ResetIndex empties the index (audit reindex fills it again from the log).
// Signed checkpoints are kept: they are not derived from the log.
func (s *Store) ResetIndex(ctx context.Context) error {
	if err := s.writable("audit reindex"); err != nil {
		return err
	}
	tx, done, err := s.begin(ctx)
	if err != nil {
		return s.wrote(classify("begin", err))
	}
	defer done()
	for _, q := range []string{"DELETE FROM audit_records", "UPDATE audit_index SET through = 0 WHERE id = 1"} {
		if _, err := tx.ExecContext(context.WithoutCancel(ctx), q); err != nil {
			tx.Rollback()
			return s.wrote(classify("audit reindex", err))
		}
	}
	return s.wrote(classify("commit", tx.Commit()))
}
