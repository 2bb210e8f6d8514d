package sqlite

import (
	"context"

	"github.com/ostiary/ostiary/internal/audit"
)

// RecordsAfter returns up to limit indexed records with seq above after,
// in seq order: what an export sends next.
func (s *Store) RecordsAfter(ctx context.Context, after uint64, limit int) ([]*audit.Record, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+recordColumns+" FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?", int64(after), limit)
	if err != nil {
		return nil, classify("read audit records", err)
	}
	defer rows.Close()
	var out []*audit.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, classify("read audit records", err)
		}
		out = append(out, r)
	}
	return out, classify("read audit records", rows.Err())
}
