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

func (s queries) WrappedDataKey(ctx context.Context) ([]byte, error) {
	var w []byte
	err := s.q.QueryRowContext(ctx, "SELECT wrapped FROM vault_keys WHERE id = 1").Scan(&w)
	if err == sql.ErrNoRows {
		return nil, fault.New(fault.NotFound, "no vault data key")
	}
	return w, classify("vault key", err)
}

const secretColumns = "name, version, upstreams, nonce, ciphertext, created_at, created_by, last_accessed"

func scanSecret(row interface{ Scan(...any) error }) (vault.Sealed, error) {
	var s vault.Sealed
	var ups string
	var created int64
	var accessed sql.NullInt64
	if err := row.Scan(&s.Name, &s.Version, &ups, &s.Nonce, &s.Ciphertext, &created, &s.CreatedBy, &accessed); err != nil {
		return s, err
	}
	s.CreatedAt, s.LastAccessed = time.UnixMicro(created).UTC(), fromMicros(accessed)
	return s, json.Unmarshal([]byte(ups), &s.Upstreams)
}

func (s queries) LatestSecret(ctx context.Context, name string) (vault.Sealed, error) {
	sec, err := scanSecret(s.q.QueryRowContext(ctx, "SELECT "+secretColumns+" FROM secrets WHERE name = ? ORDER BY version DESC LIMIT 1", name))
	if err == sql.ErrNoRows {
		return sec, fault.New(fault.NotFound, "secret %q does not exist", name)
	}
	return sec, classify("secret", err)
}

func (s queries) ListSecrets(ctx context.Context) ([]vault.Secret, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets s
		WHERE version = (SELECT max(version) FROM secrets WHERE name = s.name) ORDER BY name`)
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

func (s *Store) TouchSecret(ctx context.Context, name string, version int, at time.Time) error {
	_, err := s.w.ExecContext(ctx, "UPDATE secrets SET last_accessed = ? WHERE name = ? AND version = ?", micros(at), name, version)
	return classify("touch secret", err)
}

func (t *Tx) TouchSecret(ctx context.Context, name string, version int, at time.Time) error {
	_, err := t.tx.ExecContext(ctx, "UPDATE secrets SET last_accessed = ? WHERE name = ? AND version = ?", micros(at), name, version)
	return classify("touch secret", err)
}

func (t *Tx) SaveWrappedDataKey(ctx context.Context, wrapped []byte) error {
	_, err := t.tx.ExecContext(ctx, "INSERT INTO vault_keys (id, wrapped) VALUES (1, ?)", wrapped)
	if isUnique(err) {
		return fault.New(fault.Conflict, "the vault already has a data key")
	}
	return classify("save vault key", err)
}

func (t *Tx) InsertSecret(ctx context.Context, s vault.Sealed) error {
	ups, _ := json.Marshal(s.Upstreams)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO secrets (name, version, upstreams, nonce, ciphertext, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, s.Name, s.Version, string(ups), s.Nonce, s.Ciphertext, micros(s.CreatedAt), s.CreatedBy)
	if isUnique(err) {
		return fault.New(fault.Conflict, "secret %s changed concurrently; retry", s.Name)
	}
	return classify("insert secret", err)
}
