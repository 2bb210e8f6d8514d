package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/fault"
)

var (
	_ approval.Store   = (*Store)(nil)
	_ approval.TxStore = (*Tx)(nil)
)

const approvalColumns = `id, status, requester, requester_owner, key_id, tool, upstream, tool_version, tool_digest, args_sha256, args, decision,
	request_id, created_at, expires_at, decided_at, used_at,
	(SELECT json_group_array(json_object('approver', v.approver, 'roles', json(v.roles), 'approve', json(CASE v.approve WHEN 1 THEN 'true' ELSE 'false' END),
		'reason', v.reason, 'at', v.at) ORDER BY v.at) FROM approval_votes v WHERE v.approval_id = approvals.id)`

func scanApproval(row interface{ Scan(...any) error }) (approval.Approval, error) {
	var a approval.Approval
	var status, args, decision, votes string
	var created, expires int64
	var decided, used sql.NullInt64
	if err := row.Scan(&a.ID, &status, &a.Requester, &a.Owner, &a.KeyID, &a.Tool, &a.Upstream, &a.ToolVersion, &a.ToolDigest, &a.ArgsSHA256,
		&args, &decision, &a.RequestID, &created, &expires, &decided, &used, &votes); err != nil {
		return a, err
	}
	a.Status, a.Args, a.ArgsBytes = approval.Status(status), json.RawMessage(args), len(args)
	a.CreatedAt, a.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(expires).UTC()
	a.DecidedAt, a.UsedAt = fromMicros(decided), fromMicros(used)
	if err := json.Unmarshal([]byte(decision), &a.Decision); err != nil {
		return a, err
	}
	var vs []struct {
		Approver string   `json:"approver"`
		Roles    []string `json:"roles"`
		Approve  bool     `json:"approve"`
		Reason   string   `json:"reason"`
		At       int64    `json:"at"`
	}
	if err := json.Unmarshal([]byte(votes), &vs); err != nil {
		return a, err
	}
	a.Votes = []approval.Vote{}
	for _, v := range vs {
		a.Votes = append(a.Votes, approval.Vote{Approver: v.Approver, Roles: v.Roles, Approve: v.Approve, Reason: v.Reason, At: time.UnixMicro(v.At).UTC()})
	}
	return a, nil
}

func (s queries) approvals(ctx context.Context, where string, args ...any) ([]approval.Approval, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals `+where, args...)
	if err != nil {
		return nil, classify("approvals", err)
	}
	defer rows.Close()
	var out []approval.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, classify("approvals", err)
		}
		out = append(out, a)
	}
	return out, classify("approvals", rows.Err())
}

func (s queries) Approval(ctx context.Context, id string) (approval.Approval, error) {
	as, err := s.approvals(ctx, "WHERE id = ?", id)
	if err != nil {
		return approval.Approval{}, err
	}
	if len(as) == 0 {
		return approval.Approval{}, fault.New(fault.NotFound, "approval %s does not exist", id)
	}
	return as[0], nil
}

func (s queries) Approvals(ctx context.Context, q approval.Query) ([]approval.Approval, error) {
	where, args := []string{"1 = 1"}, []any{}
	if q.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(q.Status))
	}
	if q.Requester != "" {
		where, args = append(where, "requester = ?"), append(args, q.Requester)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, q.Until.UnixMicro())
	}
	out, err := s.approvals(ctx, "WHERE "+strings.Join(where, " AND ")+" ORDER BY created_at DESC, rowid DESC LIMIT ?", append(args, q.Limit)...)
	if out == nil && err == nil {
		out = []approval.Approval{}
	}
	return out, err
}

// CountApprovals counts the approval requests in status (metrics).
func (s queries) CountApprovals(ctx context.Context, status approval.Status) (int, error) {
	var n int
	err := s.q.QueryRowContext(ctx, "SELECT count(*) FROM approvals WHERE status = ?", string(status)).Scan(&n)
	return n, classify("count approvals", err)
}

func (s queries) FindApproval(ctx context.Context, c approval.Call, status approval.Status) (approval.Approval, error) {
	as, err := s.approvals(ctx, "WHERE requester = ? AND tool = ? AND tool_digest = ? AND args_sha256 = ? AND status = ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
		c.Requester, c.Tool, c.ToolDigest, c.ArgsSHA256, string(status))
	if err != nil {
		return approval.Approval{}, err
	}
	if len(as) == 0 {
		return approval.Approval{}, fault.New(fault.NotFound, "no %s approval for this call", status)
	}
	return as[0], nil
}

func (s queries) DueApprovals(ctx context.Context, now time.Time) ([]approval.Approval, error) {
	return s.approvals(ctx, "WHERE status IN ('pending', 'approved') AND expires_at <= ? ORDER BY expires_at", now.UnixMicro())
}

func (t *Tx) InsertApproval(ctx context.Context, a approval.Approval) error {
	d, err := json.Marshal(a.Decision)
	if err != nil {
		return classify("insert approval", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO approvals (id, status, requester, requester_owner, key_id, tool, upstream, tool_version, tool_digest, args_sha256, args,
		decision, request_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, string(a.Status), a.Requester, a.Owner, a.KeyID, a.Tool, a.Upstream, a.ToolVersion, a.ToolDigest, a.ArgsSHA256, string(a.Args),
		string(d), a.RequestID, micros(a.CreatedAt), micros(a.ExpiresAt))
	if isUnique(err) {
		return fault.New(fault.Conflict, "approval id collision; retry")
	}
	return classify("insert approval", err)
}

func (t *Tx) InsertVote(ctx context.Context, id string, v approval.Vote) error {
	roles, _ := json.Marshal(v.Roles)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO approval_votes (approval_id, approver, roles, approve, reason, at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, v.Approver, string(roles), v.Approve, v.Reason, micros(v.At))
	if isUnique(err) {
		return fault.New(fault.Conflict, "%s has already decided on approval %s", v.Approver, id)
	}
	return classify("insert vote", err)
}

func (t *Tx) SetApprovalStatus(ctx context.Context, id string, from, to approval.Status, at time.Time) error {
	col := "decided_at"
	if to == approval.Used {
		col = "used_at"
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE approvals SET status = ?, `+col+` = ? WHERE id = ? AND status = ?`, string(to), micros(at), id, string(from))
	if err != nil {
		return classify("set approval status", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fault.New(fault.Conflict, "approval %s is no longer %s", id, from)
	}
	return nil
}
