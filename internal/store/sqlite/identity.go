package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries holds the reads shared by the store (read pool) and a transaction.
type queries struct{ q querier }

func (s queries) UserByName(ctx context.Context, name string) (identity.User, error) {
	users, err := s.users(ctx, "WHERE u.name = ?", name)
	if err != nil {
		return identity.User{}, err
	}
	if len(users) == 0 {
		return identity.User{}, fault.New(fault.NotFound, "user %q does not exist", name)
	}
	return users[0], nil
}

func (s queries) ListUsers(ctx context.Context) ([]identity.User, error) {
	return s.users(ctx, "")
}

func (s queries) users(ctx context.Context, where string, args ...any) ([]identity.User, error) {
	rows, err := s.q.QueryContext(ctx, `
		SELECT u.name, u.service, u.owner, u.disabled, u.created_at, u.created_by,
		       (SELECT json_group_array(r.name ORDER BY r.name) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id)
		FROM users u `+where+` ORDER BY u.name`, args...)
	if err != nil {
		return nil, classify("list users", err)
	}
	defer rows.Close()
	var out []identity.User
	for rows.Next() {
		var u identity.User
		var created int64
		var roles string
		if err := rows.Scan(&u.Name, &u.Service, &u.Owner, &u.Disabled, &created, &u.CreatedBy, &roles); err != nil {
			return nil, classify("list users", err)
		}
		u.CreatedAt = time.UnixMicro(created).UTC()
		if u.Roles, err = stringList(roles); err != nil {
			return nil, classify("list users", err)
		}
		out = append(out, u)
	}
	return out, classify("list users", rows.Err())
}

func (s queries) RoleByName(ctx context.Context, name string) (identity.Role, error) {
	roles, err := s.roles(ctx, "WHERE r.name = ?", name)
	if err != nil {
		return identity.Role{}, err
	}
	if len(roles) == 0 {
		return identity.Role{}, fault.New(fault.NotFound, "role %q does not exist", name)
	}
	return roles[0], nil
}

func (s queries) ListRoles(ctx context.Context) ([]identity.Role, error) {
	return s.roles(ctx, "")
}

func (s queries) roles(ctx context.Context, where string, args ...any) ([]identity.Role, error) {
	rows, err := s.q.QueryContext(ctx, `
		SELECT r.name, r.builtin, r.created_at,
		       (SELECT json_group_array(g.grant_text ORDER BY g.grant_text) FROM role_grants g WHERE g.role_id = r.id)
		FROM roles r `+where+` ORDER BY r.name`, args...)
	if err != nil {
		return nil, classify("list roles", err)
	}
	defer rows.Close()
	var out []identity.Role
	for rows.Next() {
		var r identity.Role
		var created int64
		var grants string
		if err := rows.Scan(&r.Name, &r.Builtin, &created, &grants); err != nil {
			return nil, classify("list roles", err)
		}
		r.CreatedAt = time.UnixMicro(created).UTC()
		if r.Grants, err = grantList(grants); err != nil {
			return nil, classify("list roles", err)
		}
		out = append(out, r)
	}
	return out, classify("list roles", rows.Err())
}

const keyColumns = `k.id, u.name, k.hash, k.scoped, k.environment, k.created_at, k.created_by, k.expires_at, k.revoked_at, k.last_used_at,
	(SELECT json_group_array(s.grant_text ORDER BY s.grant_text) FROM key_scopes s WHERE s.key_id = k.id)`

func (s queries) KeyByID(ctx context.Context, id string) (identity.Key, error) {
	keys, err := s.keys(ctx, "WHERE k.id = ?", id)
	if err != nil {
		return identity.Key{}, err
	}
	if len(keys) == 0 {
		return identity.Key{}, fault.New(fault.NotFound, "key %s does not exist", id)
	}
	return keys[0], nil
}

func (s queries) ListKeys(ctx context.Context, user string) ([]identity.Key, error) {
	if user != "" {
		return s.keys(ctx, "WHERE u.name = ?", user)
	}
	return s.keys(ctx, "")
}

func (s queries) keys(ctx context.Context, where string, args ...any) ([]identity.Key, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys k JOIN users u ON u.id = k.user_id `+where+` ORDER BY u.name, k.created_at, k.id`, args...)
	if err != nil {
		return nil, classify("list keys", err)
	}
	defer rows.Close()
	var out []identity.Key
	for rows.Next() {
		var k identity.Key
		var scoped bool
		var created int64
		var expires, revoked, used sql.NullInt64
		var scope string
		if err := rows.Scan(&k.ID, &k.User, &k.Hash, &scoped, &k.Environment, &created, &k.CreatedBy, &expires, &revoked, &used, &scope); err != nil {
			return nil, classify("list keys", err)
		}
		k.CreatedAt = time.UnixMicro(created).UTC()
		k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromMicros(expires), fromMicros(revoked), fromMicros(used)
		if scoped {
			if k.Scope, err = grantList(scope); err != nil {
				return nil, classify("list keys", err)
			}
		}
		out = append(out, k)
	}
	return out, classify("list keys", rows.Err())
}

// grantList parses a JSON array of stored grant texts.
func grantList(s string) (authz.Grants, error) {
	texts, err := stringList(s)
	if err != nil {
		return nil, err
	}
	gs, err := authz.ParseGrants(texts)
	if err != nil {
		return nil, err
	}
	return gs, nil
}
