package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// A credential is a key with everything authentication decides on: its
// user (service account, owner, disabled), the user's roles and the union
// of their grants, the key's scope (nil when unscoped), expiry,
// revocation and environment.
func testLookupCredential(t *testing.T, s Store) {
	people(t, s)
	expires := t0.Add(time.Hour)
	mustWrite(t, s, func(tx Tx) error {
		for _, k := range []identity.Key{
			{ID: keyID(1), User: "root", Hash: []byte("hash-1"), Environment: "default", CreatedAt: t0},
			{ID: keyID(2), User: "bot", Hash: []byte("hash-2"), Environment: "prod", CreatedAt: t0, ExpiresAt: expires, Scope: grants(t, "invoke:fin.lookup")},
		} {
			if err := tx.InsertKey(ctx, k); err != nil {
				return err
			}
		}
		return tx.RevokeKey(ctx, keyID(2), t0)
	})
	c, err := s.LookupCredential(ctx, keyID(1))
	if err != nil || c.KeyID != keyID(1) || c.User != "root" || c.Service || c.Owner != "" || c.UserDisabled || string(c.Hash) != "hash-1" ||
		!c.ExpiresAt.IsZero() || c.Revoked || c.Scope != nil || c.Environment != "default" || !slices.Equal(c.Roles, []string{"boss", "reader"}) ||
		!slices.Equal(sorted(c.RoleGrants.Strings()), []string{"admin:*", "discover:*", "invoke:fin.*"}) {
		t.Errorf("root's key: %+v, %v", c, err)
	}
	c, err = s.LookupCredential(ctx, keyID(2))
	if err != nil || c.User != "bot" || !c.Service || c.Owner != "alice" || !c.ExpiresAt.Equal(expires) || !c.Revoked || c.Environment != "prod" ||
		!slices.Equal(c.Scope.Strings(), []string{"invoke:fin.lookup"}) || !slices.Equal(c.Roles, []string{"reader"}) {
		t.Errorf("bot's key: %+v, %v", c, err)
	}
	mustWrite(t, s, func(tx Tx) error { return tx.SetUserDisabled(ctx, "root", true) })
	if c, _ := s.LookupCredential(ctx, keyID(1)); !c.UserDisabled {
		t.Error("a disabled user's key does not say so")
	}
	_, err = s.LookupCredential(ctx, keyID(3))
	wantKind(t, err, fault.NotFound, "an unknown key")
}

// Last use is recorded and never moves backwards.
func testTouchKeys(t *testing.T, s Store) {
	people(t, s)
	mustWrite(t, s, func(tx Tx) error {
		return tx.InsertKey(ctx, identity.Key{ID: keyID(1), User: "alice", Hash: []byte("h"), Environment: "default", CreatedAt: t0})
	})
	last := func() time.Time {
		k, err := s.KeyByID(ctx, keyID(1))
		must(t, err)
		return k.LastUsedAt
	}
	later := t0.Add(time.Hour)
	must(t, s.TouchKeys(ctx, map[string]time.Time{keyID(1): later, keyID(9): later})) // an unknown key is no error
	if !last().Equal(later) {
		t.Errorf("last used %v, want %v", last(), later)
	}
	must(t, s.TouchKeys(ctx, map[string]time.Time{keyID(1): t0}))
	if !last().Equal(later) {
		t.Errorf("an earlier use moved last use back to %v", last())
	}
}
