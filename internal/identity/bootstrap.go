package identity

import (
	"context"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
)

// AdminUser is the user that init creates.
const AdminUser = "admin"

// Bootstrap creates the built-in roles, the user "admin" holding role admin,
// and one key for it, in one transaction together with the system-init
// record. It returns the key text, which is shown once.
func Bootstrap(ctx context.Context, a Auditor, hasher *authn.Hasher, now time.Time) (string, error) {
	id, keyText := authn.NewKey()
	_, secret, _ := authn.ParseKey(keyText)
	now = now.UTC()
	rec := audit.Record{Event: audit.EventSystemInit, Outcome: audit.Success, Actor: "system", Target: target("user", AdminUser),
		Detail: map[string]any{"roles": []string{RoleAdmin, RoleAuditor}, "admin_key_id": id}}
	_, err := a.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		for _, r := range BuiltinRoles() {
			r.CreatedAt = now
			if err := ts.InsertRole(ctx, r); err != nil {
				return err
			}
		}
		if err := ts.InsertUser(ctx, User{Name: AdminUser, Roles: []string{RoleAdmin}, CreatedAt: now, CreatedBy: "system"}); err != nil {
			return err
		}
		return ts.InsertKey(ctx, Key{ID: id, User: AdminUser, Hash: hasher.Hash(id, secret), CreatedAt: now, CreatedBy: "system"})
	}})
	if err != nil {
		return "", err
	}
	return keyText, nil
}
