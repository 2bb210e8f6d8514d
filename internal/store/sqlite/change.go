package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
)

var (
	_ change.Store   = (*Store)(nil)
	_ change.TxStore = (*Tx)(nil)
)

func (s queries) Proposals(ctx context.Context, q change.Query) ([]change.Proposal, error) {
	where, args := "WHERE 1 = 1", []any{}
	if q.State != "" {
		where += " AND state = ?"
		args = append(args, string(q.State))
	}
	if q.Object != "" {
		where += " AND object = ?"
		args = append(args, q.Object)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	rows, err := s.q.QueryContext(ctx, "SELECT body FROM proposals "+where+" ORDER BY created_at DESC, id DESC LIMIT ?", args...)
	if err != nil {
		return nil, classify("proposals", err)
	}
	defer rows.Close()
	out := []change.Proposal{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, classify("proposals", err)
		}
		var p change.Proposal
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			return nil, fault.Wrap(fault.Internal, "proposals", err)
		}
		out = append(out, p)
	}
	return out, classify("proposals", rows.Err())
}

func (s queries) Proposal(ctx context.Context, id string) (change.Proposal, error) {
	var body string
	err := s.q.QueryRowContext(ctx, "SELECT body FROM proposals WHERE id = ?", id).Scan(&body)
	if err == sql.ErrNoRows {
		return change.Proposal{}, fault.New(fault.NotFound, "no proposal %q", clipID(id))
	}
	if err != nil {
		return change.Proposal{}, classify("proposal", err)
	}
	var p change.Proposal
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return change.Proposal{}, fault.Wrap(fault.Internal, "proposal", err)
	}
	return p, nil
}

func (s queries) ReviewedVersion(ctx context.Context, object, version string) (string, error) {
	var id string
	err := s.q.QueryRowContext(ctx, "SELECT id FROM proposals WHERE object = ? AND state = 'applied' AND result = ? ORDER BY created_at DESC LIMIT 1",
		object, version).Scan(&id)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return id, classify("reviewed version", err)
}

func (t *Tx) InsertProposal(ctx context.Context, p change.Proposal) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fault.Wrap(fault.Internal, "insert proposal", err)
	}
	_, err = t.tx.ExecContext(ctx, "INSERT INTO proposals (id, kind, object, state, author, created_at, result, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		p.ID, string(p.Kind), p.Object, string(p.State), p.Author, micros(p.CreatedAt), p.Result, string(body))
	if isUnique(err) {
		return fault.New(fault.Conflict, "proposal %s exists", p.ID)
	}
	return classify("insert proposal", err)
}

func (t *Tx) UpdateProposal(ctx context.Context, p change.Proposal) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fault.Wrap(fault.Internal, "update proposal", err)
	}
	res, err := t.tx.ExecContext(ctx, "UPDATE proposals SET state = ?, result = ?, body = ? WHERE id = ?", string(p.State), p.Result, string(body), p.ID)
	if err != nil {
		return classify("update proposal", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "no proposal %q", clipID(p.ID))
	}
	return nil
}

func clipID(id string) string {
	if len(id) > 64 {
		return id[:64] + "…"
	}
	return id
}
