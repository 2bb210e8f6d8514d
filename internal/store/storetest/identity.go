package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

func grants(t *testing.T, ss ...string) authz.Grants {
	t.Helper()
	gs, err := authz.ParseGrants(ss)
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// keyID returns a valid-looking key id, distinct per n.
func keyID(n int) string { return fmt.Sprintf("k%015d", n) }

// people stores roles reader (invoke:fin.*, discover:*) and boss
// (admin:*), humans alice (reader) and root (boss), service account bot
// (reader) owned by alice.
func people(t *testing.T, s Store) {
	t.Helper()
	mustWrite(t, s, func(tx Tx) error {
		for _, r := range []identity.Role{
			{Name: "reader", Grants: grants(t, "invoke:fin.*", "discover:*"), CreatedAt: t0},
			{Name: "boss", Grants: grants(t, "admin:*"), Builtin: true, CreatedAt: t0},
		} {
			if err := tx.InsertRole(ctx, r); err != nil {
				return err
			}
		}
		for _, u := range []identity.User{
			{Name: "alice", Roles: []string{"reader"}, CreatedAt: t0, CreatedBy: "root"},
			{Name: "root", Roles: []string{"boss", "reader"}, CreatedAt: t0, CreatedBy: "system"},
			{Name: "bot", Service: true, Owner: "alice", Roles: []string{"reader"}, CreatedAt: t0.Add(time.Second), CreatedBy: "root"},
		} {
			if err := tx.InsertUser(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

func testUsers(t *testing.T, s Store) {
	people(t, s)
	u, err := s.UserByName(ctx, "bot")
	if err != nil || u.Name != "bot" || !u.Service || u.Owner != "alice" || u.Disabled || !slices.Equal(u.Roles, []string{"reader"}) ||
		!u.CreatedAt.Equal(t0.Add(time.Second)) || u.CreatedBy != "root" {
		t.Errorf("bot read back as %+v, %v", u, err)
	}
	if u, _ := s.UserByName(ctx, "root"); !slices.Equal(u.Roles, []string{"boss", "reader"}) {
		t.Errorf("roles are listed by name: %v", u.Roles)
	}
	_, err = s.UserByName(ctx, "nobody")
	wantKind(t, err, fault.NotFound, "an unknown user")
	users, err := s.ListUsers(ctx)
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if err != nil || !slices.Equal(names, []string{"alice", "bot", "root"}) {
		t.Errorf("users %v, %v", names, err)
	}
	err = write(s, func(tx Tx) error { return tx.InsertUser(ctx, identity.User{Name: "alice", CreatedAt: t0}) })
	wantKind(t, err, fault.Conflict, "a second user alice")
	err = write(s, func(tx Tx) error {
		return tx.InsertUser(ctx, identity.User{Name: "carol", Roles: []string{"reader", "no-such-role"}, CreatedAt: t0})
	})
	wantKind(t, err, fault.NotFound, "a user with a role that does not exist")
	if _, err := s.UserByName(ctx, "carol"); !fault.Is(err, fault.NotFound) {
		t.Errorf("a user refused for a missing role was stored: %v", err)
	}
	mustWrite(t, s, func(tx Tx) error { return tx.SetUserDisabled(ctx, "alice", true) })
	if u, _ := s.UserByName(ctx, "alice"); !u.Disabled {
		t.Error("alice is not disabled")
	}
	err = write(s, func(tx Tx) error { return tx.SetUserDisabled(ctx, "nobody", true) })
	wantKind(t, err, fault.NotFound, "disabling an unknown user")
}

func testRoles(t *testing.T, s Store) {
	people(t, s)
	r, err := s.RoleByName(ctx, "reader")
	if err != nil || r.Builtin || !slices.Equal(sorted(r.Grants.Strings()), []string{"discover:*", "invoke:fin.*"}) || !r.CreatedAt.Equal(t0) {
		t.Errorf("reader read back as %+v, %v", r, err)
	}
	if r, _ := s.RoleByName(ctx, "boss"); !r.Builtin {
		t.Error("boss is not built in")
	}
	_, err = s.RoleByName(ctx, "nobody")
	wantKind(t, err, fault.NotFound, "an unknown role")
	roles, err := s.ListRoles(ctx)
	if err != nil || len(roles) != 2 || roles[0].Name != "boss" || roles[1].Name != "reader" {
		t.Errorf("roles %+v, %v", roles, err)
	}
	err = write(s, func(tx Tx) error {
		return tx.InsertRole(ctx, identity.Role{Name: "reader", Grants: grants(t, "invoke:*"), CreatedAt: t0})
	})
	wantKind(t, err, fault.Conflict, "a second role reader")
}

func testKeys(t *testing.T, s Store) {
	people(t, s)
	expires := t0.Add(24 * time.Hour)
	mustWrite(t, s, func(tx Tx) error {
		for _, k := range []identity.Key{
			{ID: keyID(2), User: "alice", Hash: []byte("hash-2"), Environment: "prod", CreatedAt: t0.Add(time.Second), CreatedBy: "root", ExpiresAt: expires,
				Scope: grants(t, "invoke:fin.lookup", "discover:fin.*")},
			{ID: keyID(1), User: "alice", Hash: []byte("hash-1"), Environment: "default", CreatedAt: t0, CreatedBy: "root"},
			{ID: keyID(3), User: "root", Hash: []byte("hash-3"), Environment: "default", CreatedAt: t0, CreatedBy: "system"},
		} {
			if err := tx.InsertKey(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	k, err := s.KeyByID(ctx, keyID(2))
	if err != nil || k.User != "alice" || string(k.Hash) != "hash-2" || k.Environment != "prod" || !k.CreatedAt.Equal(t0.Add(time.Second)) ||
		k.CreatedBy != "root" || !k.ExpiresAt.Equal(expires) || !k.RevokedAt.IsZero() || !k.LastUsedAt.IsZero() ||
		!slices.Equal(sorted(k.Scope.Strings()), []string{"discover:fin.*", "invoke:fin.lookup"}) {
		t.Errorf("key 2 read back as %+v, %v", k, err)
	}
	if k, _ := s.KeyByID(ctx, keyID(1)); k.Scope != nil || !k.ExpiresAt.IsZero() {
		t.Errorf("an unscoped key that never expires read back as scope %v, expires %v", k.Scope, k.ExpiresAt)
	}
	_, err = s.KeyByID(ctx, keyID(9))
	wantKind(t, err, fault.NotFound, "an unknown key")
	ids := func(user string) []string {
		ks, err := s.ListKeys(ctx, user)
		must(t, err)
		var out []string
		for _, k := range ks {
			out = append(out, k.ID)
		}
		return out
	}
	if got := ids("alice"); !slices.Equal(got, []string{keyID(1), keyID(2)}) { // by creation
		t.Errorf("alice's keys: %v", got)
	}
	if got := ids(""); len(got) != 3 {
		t.Errorf("all keys: %v", got)
	}
	if got := ids("bot"); len(got) != 0 {
		t.Errorf("bot's keys: %v", got)
	}
	err = write(s, func(tx Tx) error {
		return tx.InsertKey(ctx, identity.Key{ID: keyID(1), User: "root", Hash: []byte("x"), CreatedAt: t0})
	})
	wantKind(t, err, fault.Conflict, "a second key with one id")
	err = write(s, func(tx Tx) error {
		return tx.InsertKey(ctx, identity.Key{ID: keyID(5), User: "nobody", Hash: []byte("x"), CreatedAt: t0})
	})
	wantKind(t, err, fault.NotFound, "a key for an unknown user")
}

// Of concurrent revocations of one key, exactly one succeeds; the rest
// are conflicts, and the key keeps the winner's time.
func testKeyRevokeOnce(t *testing.T, s Store) {
	people(t, s)
	mustWrite(t, s, func(tx Tx) error {
		return tx.InsertKey(ctx, identity.Key{ID: keyID(1), User: "alice", Hash: []byte("h"), Environment: "default", CreatedAt: t0})
	})
	const racers = 8
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			errs[i] = write(s, func(tx Tx) error { return tx.RevokeKey(ctx, keyID(1), t0.Add(time.Duration(i+1)*time.Minute)) })
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("racers %d and %d both revoked the key", won, i)
		case err == nil:
			won = i
		case !fault.Is(err, fault.Conflict):
			t.Errorf("racer %d: %v, want a conflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no racer revoked the key")
	}
	if k, _ := s.KeyByID(ctx, keyID(1)); !k.RevokedAt.Equal(t0.Add(time.Duration(won+1) * time.Minute)) {
		t.Errorf("revoked at %v, the winner said %v", k.RevokedAt, t0.Add(time.Duration(won+1)*time.Minute))
	}
	if err := write(s, func(tx Tx) error { return tx.RevokeKey(ctx, keyID(9), t0) }); err == nil {
		t.Error("revoking a key that does not exist succeeded")
	}
}

// Only a usable key carrying admin:* counts: unrevoked, unexpired, of an
// enabled user holding admin:*, unscoped or scoped to admin:*.
func testCountAdminKeys(t *testing.T, s Store) {
	people(t, s)
	mustWrite(t, s, func(tx Tx) error {
		return tx.InsertUser(ctx, identity.User{Name: "off", Roles: []string{"boss"}, CreatedAt: t0})
	})
	mustWrite(t, s, func(tx Tx) error { return tx.SetUserDisabled(ctx, "off", true) })
	count := func() int {
		var n int
		mustWrite(t, s, func(tx Tx) error {
			var err error
			n, err = tx.CountAdminKeys(ctx, t0)
			return err
		})
		return n
	}
	for i, c := range []struct {
		key  identity.Key
		adds int
	}{
		{identity.Key{User: "alice"}, 0},                                                  // no admin grant
		{identity.Key{User: "off"}, 0},                                                    // disabled
		{identity.Key{User: "root", ExpiresAt: t0}, 0},                                    // expired at now
		{identity.Key{User: "root", Scope: grants(t, "invoke:*")}, 0},                     // scoped below admin
		{identity.Key{User: "root", ExpiresAt: t0.Add(time.Microsecond)}, 1},              // not yet expired
		{identity.Key{User: "root", Scope: grants(t, "admin:*", "invoke:fin.lookup")}, 1}, // scoped to admin
		{identity.Key{User: "root"}, 1},
	} {
		before := count()
		k := c.key
		k.ID, k.Hash, k.Environment, k.CreatedAt = keyID(i), []byte("h"), "default", t0
		mustWrite(t, s, func(tx Tx) error { return tx.InsertKey(ctx, k) })
		if got := count() - before; got != c.adds {
			t.Errorf("key %+v added %d admin keys, want %d", c.key, got, c.adds)
		}
	}
	before := count()
	mustWrite(t, s, func(tx Tx) error { return tx.RevokeKey(ctx, keyID(6), t0) })
	if count() != before-1 {
		t.Error("a revoked key still counts")
	}
}
