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

func (s queries) WrappedDataKeys(ctx context.Context) ([]vault.WrappedKey, error) {
	rows, err := s.q.QueryContext(ctx, "SELECT key_id, wrapped FROM vault_wraps ORDER BY id DESC")
	if err != nil {
		return nil, classify("vault keys", err)
	}
	defer rows.Close()
	var out []vault.WrappedKey
	for rows.Next() {
		var w vault.WrappedKey
		if err := rows.Scan(&w.KeyID, &w.Wrapped); err != nil {
			return nil, classify("vault keys", err)
		}
		out = append(out, w)
	}
	return out, classify("vault keys", rows.Err())
}

const secretColumns = "name, environment, version, upstreams, key_id, nonce, ciphertext, created_at, created_by, last_accessed, rotate_every, rotate_now, alerted_at, kill_switches"

func scanSecret(row interface{ Scan(...any) error }) (vault.Sealed, error) {
	var s vault.Sealed
	var ups string
	var created int64
	var accessed, every, alerted sql.NullInt64
	var flag, kills sql.NullString
	if err := row.Scan(&s.Name, &s.Environment, &s.Version, &ups, &s.KeyID, &s.Nonce, &s.Ciphertext, &created, &s.CreatedBy, &accessed,
		&every, &flag, &alerted, &kills); err != nil {
		return s, err
	}
	s.CreatedAt, s.LastAccessed, s.AlertedAt = time.UnixMicro(created).UTC(), fromMicros(accessed), fromMicros(alerted)
	s.RotateEvery = vault.Period(time.Duration(every.Int64) * time.Second)
	if flag.Valid {
		s.RotateNow = new(vault.Flag)
		if err := json.Unmarshal([]byte(flag.String), s.RotateNow); err != nil {
			return s, err
		}
	}
	if kills.Valid {
		if err := json.Unmarshal([]byte(kills.String), &s.KillSwitches); err != nil {
			return s, err
		}
	}
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
	_, err := t.tx.ExecContext(ctx, "INSERT INTO vault_wraps (key_id, wrapped, created_at) VALUES (1, ?, ?)", wrapped, micros(at))
	return classify("save vault key", err)
}

func (t *Tx) AddDataKeyWrap(ctx context.Context, wrapped []vault.WrappedKey, at time.Time, retireOthers bool) (int, error) {
	if retireOthers {
		if _, err := t.tx.ExecContext(ctx, "DELETE FROM vault_wraps"); err != nil {
			return 0, classify("rewrap vault key", err)
		}
	}
	for _, w := range wrapped {
		if _, err := t.tx.ExecContext(ctx, "INSERT INTO vault_wraps (key_id, wrapped, created_at) VALUES (?, ?, ?)", w.KeyID, w.Wrapped, micros(at)); err != nil {
			return 0, classify("rewrap vault key", err)
		}
	}
	var n int
	err := t.tx.QueryRowContext(ctx, "SELECT count(*) FROM vault_wraps WHERE key_id = (SELECT max(key_id) FROM vault_wraps)").Scan(&n)
	return n, classify("rewrap vault key", err)
}

func (t *Tx) AddDataKey(ctx context.Context, wrapped []vault.WrappedKey, at time.Time) error {
	if len(wrapped) == 0 {
		return fault.New(fault.Invalid, "a data key needs a wrapping")
	}
	id := wrapped[0].KeyID
	var n int
	if err := t.tx.QueryRowContext(ctx, "SELECT count(*) FROM vault_wraps WHERE key_id = ?", id).Scan(&n); err != nil {
		return classify("add data key", err)
	}
	if n > 0 {
		return fault.New(fault.Conflict, "data key %d exists already", id)
	}
	for _, w := range wrapped {
		if w.KeyID != id {
			return fault.New(fault.Invalid, "the wrappings of one data key carry different key ids")
		}
		if _, err := t.tx.ExecContext(ctx, "INSERT INTO vault_wraps (key_id, wrapped, created_at) VALUES (?, ?, ?)", w.KeyID, w.Wrapped, micros(at)); err != nil {
			return classify("add data key", err)
		}
	}
	return nil
}

func (t *Tx) RetireDataKey(ctx context.Context, keyID int) error {
	var n int
	if err := t.tx.QueryRowContext(ctx, "SELECT count(*) FROM secrets WHERE key_id = ?", keyID).Scan(&n); err != nil {
		return classify("retire data key", err)
	}
	if n > 0 {
		return fault.New(fault.Conflict, "%d stored value(s) are still sealed under data key %d", n, keyID)
	}
	_, err := t.tx.ExecContext(ctx, "DELETE FROM vault_wraps WHERE key_id = ?", keyID)
	return classify("retire data key", err)
}

func (s queries) CountSealedNotUnder(ctx context.Context, keyID int) (int, error) {
	var n int
	err := s.q.QueryRowContext(ctx, "SELECT count(*) FROM secrets WHERE key_id != ?", keyID).Scan(&n)
	return n, classify("count sealed", err)
}

func (t *Tx) SealedNotUnder(ctx context.Context, keyID, limit int) ([]vault.Sealed, error) {
	rows, err := t.tx.QueryContext(ctx, "SELECT "+secretColumns+" FROM secrets WHERE key_id != ? LIMIT ?", keyID, limit)
	if err != nil {
		return nil, classify("sealed under old keys", err)
	}
	defer rows.Close()
	var out []vault.Sealed
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, classify("sealed under old keys", err)
		}
		out = append(out, sec)
	}
	return out, classify("sealed under old keys", rows.Err())
}

func (s queries) ScanSealed(ctx context.Context, fn func(vault.Sealed) error) error {
	rows, err := s.q.QueryContext(ctx, "SELECT "+secretColumns+" FROM secrets ORDER BY name, environment, version")
	if err != nil {
		return classify("scan secrets", err)
	}
	defer rows.Close()
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return classify("scan secrets", err)
		}
		if err := fn(sec); err != nil {
			return err
		}
	}
	return classify("scan secrets", rows.Err())
}

func (t *Tx) Reseal(ctx context.Context, s vault.Sealed) error {
	res, err := t.tx.ExecContext(ctx, "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? WHERE name = ? AND environment = ? AND version = ?",
		s.KeyID, s.Nonce, s.Ciphertext, s.Name, s.Environment, s.Version)
	if err != nil {
		return classify("reseal secret", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "secret %s (%s) version %d is gone", s.Name, s.Environment, s.Version)
	}
	return nil
}

func (t *Tx) InsertSecret(ctx context.Context, s vault.Sealed) error {
	ups, _ := json.Marshal(s.Upstreams)
	var every sql.NullInt64
	if s.RotateEvery > 0 {
		every = sql.NullInt64{Int64: int64(time.Duration(s.RotateEvery) / time.Second), Valid: true}
	}
	keyID := max(s.KeyID, 1)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO secrets (name, environment, version, upstreams, key_id, nonce, ciphertext, created_at, created_by, rotate_every)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, s.Name, s.Environment, s.Version, string(ups), keyID, s.Nonce, s.Ciphertext, micros(s.CreatedAt), s.CreatedBy, every)
	if isUnique(err) {
		return fault.New(fault.Conflict, "secret %s changed concurrently; retry", s.Name)
	}
	return classify("insert secret", err)
}

func (t *Tx) MarkRotateNow(ctx context.Context, name, env string, version int, f vault.Flag) (bool, error) {
	b, _ := json.Marshal(f)
	res, err := t.tx.ExecContext(ctx, "UPDATE secrets SET rotate_now = ? WHERE name = ? AND environment = ? AND version = ? AND rotate_now IS NULL",
		string(b), name, env, version)
	if err != nil {
		return false, classify("mark secret", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (t *Tx) SetAlerted(ctx context.Context, name, env string, version int, at time.Time) error {
	_, err := t.tx.ExecContext(ctx, "UPDATE secrets SET alerted_at = ? WHERE name = ? AND environment = ? AND version = ?", micros(at), name, env, version)
	return classify("secret alerted", err)
}

func (t *Tx) SetKillSwitches(ctx context.Context, name, env string, version int, ids []string) error {
	var v sql.NullString
	if len(ids) > 0 {
		b, _ := json.Marshal(ids)
		v = sql.NullString{String: string(b), Valid: true}
	}
	_, err := t.tx.ExecContext(ctx, "UPDATE secrets SET kill_switches = ? WHERE name = ? AND environment = ? AND version = ?", v, name, env, version)
	return classify("secret kill switches", err)
}

func (s queries) StaleKillSwitches(ctx context.Context) ([]vault.Secret, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets s WHERE kill_switches IS NOT NULL
		AND version < (SELECT max(version) FROM secrets WHERE name = s.name AND environment = s.environment) ORDER BY name, environment, version`)
	if err != nil {
		return nil, classify("stale kill switches", err)
	}
	defer rows.Close()
	var out []vault.Secret
	for rows.Next() {
		sec, err := scanSecret(rows)
		if err != nil {
			return nil, classify("stale kill switches", err)
		}
		out = append(out, sec.Secret)
	}
	return out, classify("stale kill switches", rows.Err())
}

func (s *Store) ClearKillSwitches(ctx context.Context, name, env string, version int) error {
	if err := s.writable("clear kill switches"); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, s.timeout)
	defer cancel()
	_, err := s.w.ExecContext(ctx, "UPDATE secrets SET kill_switches = NULL WHERE name = ? AND environment = ? AND version = ?", name, env, version)
	return s.wrote(classify("clear kill switches", err))
}

func (t *Tx) ClearKillSwitches(ctx context.Context, name, env string, version int) error {
	return t.SetKillSwitches(ctx, name, env, version, nil)
}
