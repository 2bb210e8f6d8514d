package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// Tx is one write transaction. It implements audit.Tx and identity.TxStore.
type Tx struct {
	queries
	tx     *sql.Tx
	sp     atomic.Int64 // savepoint counter
	insert *sql.Stmt    // prepared on first AppendRecord
}

var (
	_ audit.Tx         = (*Tx)(nil)
	_ identity.TxStore = (*Tx)(nil)
	_ identity.Reader  = (*Store)(nil)
	_ audit.Store      = (*Store)(nil)
	_ audit.Source     = (*Store)(nil)
)

// Step runs fn inside a savepoint, undoing its writes if it fails.
func (t *Tx) Step(ctx context.Context, fn func() error) error {
	// A broken transaction keeps its cause's classification: a storage
	// failure must stop the writer, a passed deadline must not.
	name := fmt.Sprintf("step%d", t.sp.Add(1))
	if _, err := t.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return fmt.Errorf("%w: %w", audit.ErrTxBroken, classify("savepoint", err))
	}
	if err := fn(); err != nil {
		if _, rerr := t.tx.ExecContext(ctx, "ROLLBACK TO "+name); rerr != nil {
			return fmt.Errorf("%w: %w (after %v)", audit.ErrTxBroken, classify("rollback to savepoint", rerr), err)
		}
		if _, rerr := t.tx.ExecContext(ctx, "RELEASE "+name); rerr != nil {
			return fmt.Errorf("%w: %w (after %v)", audit.ErrTxBroken, classify("release savepoint", rerr), err)
		}
		return err
	}
	if _, err := t.tx.ExecContext(ctx, "RELEASE "+name); err != nil {
		return fmt.Errorf("%w: %w", audit.ErrTxBroken, classify("release savepoint", err))
	}
	return nil
}

func (t *Tx) InsertUser(ctx context.Context, u identity.User) error {
	res, err := t.tx.ExecContext(ctx, "INSERT INTO users (name, service, owner, disabled, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
		u.Name, u.Service, u.Owner, u.Disabled, micros(u.CreatedAt), u.CreatedBy)
	if isUnique(err) {
		return fault.New(fault.Conflict, "user %q already exists", u.Name)
	}
	if err != nil {
		return classify("insert user", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return classify("insert user", err)
	}
	for _, r := range u.Roles {
		res, err := t.tx.ExecContext(ctx, "INSERT INTO user_roles (user_id, role_id) SELECT ?, id FROM roles WHERE name = ?", id, r)
		if err != nil {
			return classify("assign role", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fault.New(fault.NotFound, "role %q does not exist", r)
		}
	}
	return nil
}

func (t *Tx) SetUserRoles(ctx context.Context, name string, roles []string) error {
	var id int64
	if err := t.tx.QueryRowContext(ctx, "SELECT id FROM users WHERE name = ?", name).Scan(&id); err != nil {
		if err == sql.ErrNoRows {
			return fault.New(fault.NotFound, "user %q does not exist", name)
		}
		return classify("set roles", err)
	}
	if _, err := t.tx.ExecContext(ctx, "DELETE FROM user_roles WHERE user_id = ?", id); err != nil {
		return classify("set roles", err)
	}
	for _, r := range roles {
		res, err := t.tx.ExecContext(ctx, "INSERT INTO user_roles (user_id, role_id) SELECT ?, id FROM roles WHERE name = ?", id, r)
		if err != nil {
			return classify("assign role", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fault.New(fault.NotFound, "role %q does not exist", r)
		}
	}
	return nil
}

func (t *Tx) SetUserDisabled(ctx context.Context, name string, disabled bool) error {
	res, err := t.tx.ExecContext(ctx, "UPDATE users SET disabled = ? WHERE name = ?", disabled, name)
	if err != nil {
		return classify("update user", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "user %q does not exist", name)
	}
	return nil
}

func (t *Tx) InsertRole(ctx context.Context, r identity.Role) error {
	res, err := t.tx.ExecContext(ctx, "INSERT INTO roles (name, builtin, created_at) VALUES (?, ?, ?)", r.Name, r.Builtin, micros(r.CreatedAt))
	if isUnique(err) {
		return fault.New(fault.Conflict, "role %q already exists", r.Name)
	}
	if err != nil {
		return classify("insert role", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return classify("insert role", err)
	}
	for _, g := range r.Grants {
		if _, err := t.tx.ExecContext(ctx, "INSERT INTO role_grants (role_id, grant_text) VALUES (?, ?)", id, g.String()); err != nil {
			return classify("insert grant", err)
		}
	}
	return nil
}

func (t *Tx) InsertKey(ctx context.Context, k identity.Key) error {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO api_keys (id, user_id, hash, scoped, environment, created_at, created_by, expires_at)
		SELECT ?, id, ?, ?, ?, ?, ?, ? FROM users WHERE name = ?`,
		k.ID, k.Hash, k.Scope != nil, k.Environment, micros(k.CreatedAt), k.CreatedBy, micros(k.ExpiresAt), k.User)
	if isUnique(err) {
		return fault.New(fault.Conflict, "key id collision; retry")
	}
	if err != nil {
		return classify("insert key", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.NotFound, "user %q does not exist", k.User)
	}
	for _, g := range k.Scope {
		if _, err := t.tx.ExecContext(ctx, "INSERT INTO key_scopes (key_id, grant_text) VALUES (?, ?)", k.ID, g.String()); err != nil {
			return classify("insert key scope", err)
		}
	}
	return nil
}

func (t *Tx) RevokeKey(ctx context.Context, id string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", micros(at), id)
	if err != nil {
		return classify("revoke key", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.Conflict, "key %s does not exist or is already revoked", id)
	}
	return nil
}

func (t *Tx) CountAdminKeys(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `
		SELECT count(*) FROM api_keys k JOIN users u ON u.id = k.user_id
		WHERE u.disabled = 0 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?)
		  AND (k.scoped = 0 OR EXISTS (SELECT 1 FROM key_scopes s WHERE s.key_id = k.id AND s.grant_text = 'admin:*'))
		  AND EXISTS (SELECT 1 FROM user_roles ur JOIN role_grants g ON g.role_id = ur.role_id
		              WHERE ur.user_id = u.id AND g.grant_text = 'admin:*')`, now.UnixMicro()).Scan(&n)
	return n, classify("count admin keys", err)
}

// stringList parses a JSON array of strings produced by json_group_array.
func stringList(s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
