package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
)

var (
	_ policy.Store   = (*Store)(nil)
	_ policy.TxStore = (*Tx)(nil)
)

func (s queries) Policies(ctx context.Context) ([]policy.Version, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT version, digest, description, rules, tests, created_at, created_by FROM policies ORDER BY version DESC`)
	if err != nil {
		return nil, classify("policies", err)
	}
	defer rows.Close()
	out := []policy.Version{}
	for rows.Next() {
		var v policy.Version
		var created int64
		if err := rows.Scan(&v.Version, &v.Digest, &v.Description, &v.Rules, &v.Tests, &created, &v.CreatedBy); err != nil {
			return nil, classify("policies", err)
		}
		v.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, v)
	}
	return out, classify("policies", rows.Err())
}

func (s queries) Policy(ctx context.Context, version int) (policy.Version, error) {
	q := `SELECT version, digest, description, rules, tests, created_at, created_by, source FROM policies `
	args := []any{}
	if version == 0 {
		q += "ORDER BY version DESC LIMIT 1"
	} else {
		q += "WHERE version = ?"
		args = append(args, version)
	}
	var v policy.Version
	var created int64
	err := s.q.QueryRowContext(ctx, q, args...).Scan(&v.Version, &v.Digest, &v.Description, &v.Rules, &v.Tests, &created, &v.CreatedBy, &v.Source)
	if err == sql.ErrNoRows {
		if version == 0 {
			return v, fault.New(fault.NotFound, "no policy is stored")
		}
		return v, fault.New(fault.NotFound, "policy version %d does not exist", version)
	}
	v.CreatedAt = time.UnixMicro(created).UTC()
	return v, classify("policy", err)
}

func (t *Tx) InsertPolicy(ctx context.Context, v policy.Version) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO policies (version, source, digest, description, rules, tests, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, v.Version, v.Source, v.Digest, v.Description, v.Rules, v.Tests, micros(v.CreatedAt), v.CreatedBy)
	if isUnique(err) {
		return fault.New(fault.Conflict, "the policy changed concurrently; retry")
	}
	return classify("insert policy", err)
}
