package sqlite

import (
	"context"
	"database/sql"
	"maps"
	"slices"
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

// touchBatch bounds the keys updated in one transaction of TouchKeys.
const touchBatch = 256

// TouchKeys records last-use times, never moving one backwards. It is
// background bookkeeping and never holds the write path for long: at most
// touchBatch keys per transaction, each waiting for the lock no longer
// than a quarter of the store's timeout.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	for ids := range slices.Chunk(slices.Sorted(maps.Keys(used)), touchBatch) {
		if err := s.touchKeys(ctx, ids, used); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) touchKeys(ctx context.Context, ids []string, used map[string]time.Time) error {
	if err := s.writable("touch keys"); err != nil {
		return err
	}
	wctx, cancel := bounded(ctx, s.timeout/4)
	defer cancel()
	tx, done, err := s.begin(wctx)
	if err != nil {
		return s.wrote(classify("touch keys", err))
	}
	defer done()
	defer tx.Rollback()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?", used[id].UnixMicro(), id); err != nil {
			return s.wrote(classify("touch keys", err))
		}
	}
	return s.wrote(classify("touch keys", tx.Commit()))
}
