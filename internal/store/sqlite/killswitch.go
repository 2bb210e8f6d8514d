package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/killswitch"
)

var (
	_ killswitch.Store   = (*Store)(nil)
	_ killswitch.TxStore = (*Tx)(nil)
)

func (s queries) ListKillSwitches(ctx context.Context) ([]killswitch.Switch, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT id, kind, target, reason, engaged_by, engaged_at,
		coalesce(released_by, ''), released_at, coalesce(release_reason, '') FROM killswitches ORDER BY engaged_at, id`)
	if err != nil {
		return nil, classify("list kill switches", err)
	}
	defer rows.Close()
	var out []killswitch.Switch
	for rows.Next() {
		var sw killswitch.Switch
		var kind string
		var engaged int64
		var released sql.NullInt64
		if err := rows.Scan(&sw.ID, &kind, &sw.Target, &sw.Reason, &sw.EngagedBy, &engaged, &sw.ReleasedBy, &released, &sw.ReleaseReason); err != nil {
			return nil, classify("list kill switches", err)
		}
		sw.Kind, sw.EngagedAt, sw.ReleasedAt = killswitch.Kind(kind), time.UnixMicro(engaged).UTC(), fromMicros(released)
		out = append(out, sw)
	}
	return out, classify("list kill switches", rows.Err())
}

func (t *Tx) InsertKillSwitch(ctx context.Context, sw killswitch.Switch) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO killswitches (id, kind, target, reason, engaged_by, engaged_at) VALUES (?, ?, ?, ?, ?, ?)`,
		sw.ID, string(sw.Kind), sw.Target, sw.Reason, sw.EngagedBy, micros(sw.EngagedAt))
	return classify("insert kill switch", err)
}

func (t *Tx) ReleaseKillSwitch(ctx context.Context, id, by, reason string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE killswitches SET released_by = ?, released_at = ?, release_reason = ?
		WHERE id = ? AND released_at IS NULL`, by, micros(at), reason, id)
	if err != nil {
		return classify("release kill switch", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.Conflict, "kill switch %s is not engaged", id)
	}
	return nil
}
