package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

var _ authn.Store = (*Store)(nil)

// LookupCredential reads a key, its user and the user's roles' grants in one
// query.
func (s *Store) LookupCredential(ctx context.Context, keyID string) (authn.Credential, error) {
	var c authn.Credential
	var expires, revoked sql.NullInt64
	var scoped bool
	var roles, grants, scope string
	err := s.r.QueryRowContext(ctx, `
		SELECT k.id, u.name, u.service, u.owner, u.disabled, k.hash, k.expires_at, k.revoked_at, k.scoped, k.environment,
		       (SELECT json_group_array(r.name ORDER BY r.name) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id),
		       (SELECT json_group_array(DISTINCT g.grant_text) FROM user_roles ur JOIN role_grants g ON g.role_id = ur.role_id WHERE ur.user_id = u.id),
		       (SELECT json_group_array(s.grant_text) FROM key_scopes s WHERE s.key_id = k.id)
		FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?`, keyID).
		Scan(&c.KeyID, &c.User, &c.Service, &c.Owner, &c.UserDisabled, &c.Hash, &expires, &revoked, &scoped, &c.Environment, &roles, &grants, &scope)
	if err == sql.ErrNoRows {
		return c, fault.New(fault.NotFound, "no such key")
	}
	if err != nil {
		return c, classify("lookup credential", err)
	}
	c.ExpiresAt, c.Revoked = fromMicros(expires), revoked.Valid
	if c.Roles, err = stringList(roles); err != nil {
		return c, classify("lookup credential", err)
	}
	if c.RoleGrants, err = grantList(grants); err != nil {
		return c, classify("lookup credential", err)
	}
	if scoped {
		if c.Scope, err = grantList(scope); err != nil {
			return c, classify("lookup credential", err)
		}
		if c.Scope == nil {
			c.Scope = authz.Grants{}
		}
	}
	return c, nil
}

// TouchKeys records last-use times, never moving one backwards.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return classify("touch keys", err)
	}
	defer tx.Rollback()
	for id, t := range used {
		if _, err := tx.ExecContext(ctx, "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?", t.UnixMicro(), id); err != nil {
			return classify("touch keys", err)
		}
	}
	return classify("touch keys", tx.Commit())
}
