package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/vault"
)

var (
	_ vault.Store   = (*Store)(nil)
	_ vault.TxStore = (*Tx)(nil)
)

func (s queries) WrappedDataKeys(ctx context.Context) ([][]byte, error) {
	rows, err := s.q.QueryContext(ctx, "SELECT wrapped FROM vault_wraps ORDER BY id DESC")
	if err != nil {
		return nil, classify("vault keys", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var w []byte
		if err := rows.Scan(&w); err != nil {
			return nil, classify("vault keys", err)
		}
		out = append(out, w)
	}
	return out, classify("vault keys", rows.Err())
}

const secretColumns = "name, environment, version, upstreams, nonce, ciphertext, created_at, created_by, last_accessed"

func scanSecret(row interface{ Scan(...any) error }) (vault.Sealed, error) {
	var s vault.Sealed
	var ups string
	var created int64
	var accessed sql.NullInt64
	if err := row.Scan(&s.Name, &s.Environment, &s.Version, &ups, &s.Nonce, &s.Ciphertext, &created, &s.CreatedBy, &accessed); err != nil {
		return s, err
	}
	s.CreatedAt, s.LastAccessed = time.UnixMicro(created).UTC(), fromMicros(accessed)
	return s, json.Unmarshal([]byte(ups), &s.Upstreams)
}

func (s queries) LatestSecret(ctx context.Context, name, env string) (vault.Sealed, error) {
	sec, err := scanSecret(s.q.QueryRowContext(ctx, "SELECT "+secretColumns+" FROM secrets WHERE name = ? AND environment = ? ORDER BY version DESC LIMIT 1", name, env))
	if err == sql.ErrNoRows {
		return sec, fault.New(fault.NotFound, "secret %q has no value in environment %q", name, env)
	}
	return sec, classify("secret", err)
}

func (s queries) ListSecrets(ctx context.Context) ([]vault.Secret, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets s
		WHERE version = (SELECT max(version) FROM secrets WHERE name = s.name AND environment = s.environment) ORDER BY name, environment`)
	if err != nil {
		return nil, classify("list secrets", err)
	}
	defer rows.Close()
	out := []vault.Secret{}
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, classify("list secrets", err)
		}
		out = append(out, sec.Secret)
	}
	return out, classify("list secrets", rows.Err())
}

func (s *Store) TouchSecret(ctx context.Context, name, env string, version int, at time.Time) error {
	if err := s.writable("touch secret"); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, s.timeout/4) // bookkeeping: it yields the write path early
	defer cancel()
	_, err := s.w.ExecContext(ctx, "UPDATE secrets SET last_accessed = ? WHERE name = ? AND environment = ? AND version = ?", micros(at), name, env, version)
	return s.wrote(classify("touch secret", err))
}

func (t *Tx) TouchSecret(ctx context.Context, name, env string, version int, at time.Time) error {
	_, err := t.tx.ExecContext(ctx, "UPDATE secrets SET last_accessed = ? WHERE name = ? AND environment = ? AND version = ?", micros(at), name, env, version)
	return classify("touch secret", err)
}

func (t *Tx) SaveWrappedDataKey(ctx context.Context, wrapped []byte, at time.Time) error {
	var n int
	if err := t.tx.QueryRowContext(ctx, "SELECT count(*) FROM vault_wraps").Scan(&n); err != nil {
		return classify("save vault key", err)
	}
	if n > 0 {
		return fault.New(fault.Conflict, "the vault already has a data key")
	}
	_, err := t.tx.ExecContext(ctx, "INSERT INTO vault_wraps (wrapped, created_at) VALUES (?, ?)", wrapped, micros(at))
	return classify("save vault key", err)
}

func (t *Tx) AddDataKeyWrap(ctx context.Context, wrapped []byte, at time.Time, retireOthers bool) (int, error) {
	if retireOthers {
		if _, err := t.tx.ExecContext(ctx, "DELETE FROM vault_wraps"); err != nil {
			return 0, classify("rewrap vault key", err)
		}
	}
	if _, err := t.tx.ExecContext(ctx, "INSERT INTO vault_wraps (wrapped, created_at) VALUES (?, ?)", wrapped, micros(at)); err != nil {
		return 0, classify("rewrap vault key", err)
	}
	var n int
	err := t.tx.QueryRowContext(ctx, "SELECT count(*) FROM vault_wraps").Scan(&n)
	return n, classify("rewrap vault key", err)
}

func (t *Tx) InsertSecret(ctx context.Context, s vault.Sealed) error {
	ups, _ := json.Marshal(s.Upstreams)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO secrets (name, environment, version, upstreams, nonce, ciphertext, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, s.Name, s.Environment, s.Version, string(ups), s.Nonce, s.Ciphertext, micros(s.CreatedAt), s.CreatedBy)
	if isUnique(err) {
		return fault.New(fault.Conflict, "secret %s changed concurrently; retry", s.Name)
	}
	return classify("insert secret", err)
}
