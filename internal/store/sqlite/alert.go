package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

var (
	_ alert.Store   = (*Store)(nil)
	_ alert.TxStore = (*Tx)(nil)
)

const alertColumns = `id, rule, kind, subject, tool, summary, facts, route, escalate_to, raised_at, escalate_at,
	escalated_at, coalesce(acked_by, ''), acked_at, coalesce(ack_reason, '')`

func (s queries) alerts(ctx context.Context, where string, args ...any) ([]alert.Alert, error) {
	rows, err := s.q.QueryContext(ctx, "SELECT "+alertColumns+" FROM alerts "+where, args...)
	if err != nil {
		return nil, classify("list alerts", err)
	}
	defer rows.Close()
	var out []alert.Alert
	for rows.Next() {
		var a alert.Alert
		var facts string
		var raised, escalate int64
		var escalated, acked sql.NullInt64
		if err := rows.Scan(&a.ID, &a.Rule, &a.Kind, &a.Subject, &a.Tool, &a.Summary, &facts, &a.Route, &a.EscalateTo, &raised, &escalate,
			&escalated, &a.AckedBy, &acked, &a.AckReason); err != nil {
			return nil, classify("list alerts", err)
		}
		if a.Facts, err = audit.ParseDetail(facts); err != nil {
			return nil, fault.Wrap(fault.Internal, "alert facts", err)
		}
		a.RaisedAt, a.EscalateAt = time.UnixMicro(raised).UTC(), time.UnixMicro(escalate).UTC()
		a.EscalatedAt, a.AckedAt = fromMicros(escalated), fromMicros(acked)
		a.Status = alert.Open
		if !a.AckedAt.IsZero() {
			a.Status = alert.Acknowledged
		}
		out = append(out, a)
	}
	return out, classify("list alerts", rows.Err())
}

func (s queries) Alerts(ctx context.Context, status string, limit int) ([]alert.Alert, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	where := ""
	switch status {
	case alert.Open:
		where = "WHERE acked_at IS NULL "
	case alert.Acknowledged:
		where = "WHERE acked_at IS NOT NULL "
	}
	return s.alerts(ctx, where+"ORDER BY raised_at DESC, id LIMIT ?", limit)
}

func (s queries) AlertByID(ctx context.Context, id string) (alert.Alert, error) {
	as, err := s.alerts(ctx, "WHERE id = ?", id)
	if err != nil {
		return alert.Alert{}, err
	}
	if len(as) == 0 {
		return alert.Alert{}, fault.New(fault.NotFound, "alert %s does not exist", id)
	}
	return as[0], nil
}

func (s queries) DueAlerts(ctx context.Context, now time.Time) ([]alert.Alert, error) {
	return s.alerts(ctx, "WHERE acked_at IS NULL AND escalated_at IS NULL AND escalate_at <= ? ORDER BY escalate_at, id LIMIT 500", now.UnixMicro())
}

func (s queries) AlertSeen(ctx context.Context, k alert.SeenKey) (bool, error) {
	var n int
	err := s.q.QueryRowContext(ctx, "SELECT count(*) FROM alert_seen WHERE rule = ? AND subject = ? AND object = ?", k.Rule, k.Subject, k.Object).Scan(&n)
	return n > 0, classify("alert seen", err)
}

func (s queries) RecentSeen(ctx context.Context, limit int, fn func(alert.SeenKey)) error {
	rows, err := s.q.QueryContext(ctx, "SELECT rule, subject, object FROM alert_seen ORDER BY first_at DESC LIMIT ?", limit)
	if err != nil {
		return classify("alert seen", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k alert.SeenKey
		if err := rows.Scan(&k.Rule, &k.Subject, &k.Object); err != nil {
			return classify("alert seen", err)
		}
		fn(k)
	}
	return classify("alert seen", rows.Err())
}

func (t *Tx) InsertAlert(ctx context.Context, a alert.Alert, seen *alert.SeenKey) error {
	facts, err := json.Marshal(a.Facts)
	if err != nil {
		return fault.Wrap(fault.Internal, "alert facts", err)
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO alerts (id, rule, kind, subject, tool, summary, facts, route, escalate_to, raised_at, escalate_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Rule, a.Kind, a.Subject, a.Tool, a.Summary, string(facts), a.Route, a.EscalateTo,
		a.RaisedAt.UnixMicro(), a.EscalateAt.UnixMicro()); err != nil {
		return classify("insert alert", err)
	}
	if seen != nil {
		if _, err := t.tx.ExecContext(ctx, "INSERT OR IGNORE INTO alert_seen (rule, subject, object, first_at) VALUES (?, ?, ?, ?)",
			seen.Rule, seen.Subject, seen.Object, a.RaisedAt.UnixMicro()); err != nil {
			return classify("insert alert seen", err)
		}
	}
	return nil
}

func (t *Tx) AckAlert(ctx context.Context, id, by, reason string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, "UPDATE alerts SET acked_by = ?, acked_at = ?, ack_reason = ? WHERE id = ? AND acked_at IS NULL", by, at.UnixMicro(), reason, id)
	if err != nil {
		return classify("acknowledge alert", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if _, err := t.AlertByID(ctx, id); err != nil {
		return err
	}
	return fault.New(fault.Conflict, "alert %s is already acknowledged", id)
}

func (t *Tx) MarkAlertEscalated(ctx context.Context, id string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, "UPDATE alerts SET escalated_at = ? WHERE id = ? AND escalated_at IS NULL AND acked_at IS NULL", at.UnixMicro(), id)
	if err != nil {
		return classify("escalate alert", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.Conflict, "alert %s was acknowledged or escalated meanwhile", id)
	}
	return nil
}
