package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
)

// ConsolePasswordHash returns the console password hash of an enabled, non-service user;
// ok is false when there is none.
func (s queries) ConsolePasswordHash(ctx context.Context, name string) (string, bool, error) {
	var hash string
	err := s.q.QueryRowContext(ctx, `SELECT p.hash FROM console_passwords p JOIN users u ON u.id = p.user_id
		WHERE u.name = ? AND u.disabled = 0 AND u.service = 0`, name).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, classify("read console password", err)
	}
	return hash, true, nil
}

// SetConsolePassword stores (replacing) the console password hash of a user; the caller
// audits it in the same transaction.
func (t *Tx) SetConsolePassword(ctx context.Context, name, hash, by string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO console_passwords (user_id, hash, set_at, set_by)
		SELECT id, ?, ?, ? FROM users WHERE name = ? AND service = 0
		ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at, set_by = excluded.set_by`,
		hash, micros(at), by, name)
	if err != nil {
		return classify("set console password", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "user %q does not exist or is a service account", name)
	}
	return nil
}
