package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
)

var ctx = context.Background()

// fixture is the identity service on a real store, with the real
// authenticator as its cache: every principal here comes from
// authenticating a key the service made.
type fixture struct {
	env   *sqlitetest.Env
	clock *testutil.Clock
	authn *authn.Authenticator
	svc   *identity.Service
	admin *authn.Principal
	key   string // the admin's key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: testutil.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))}
	f.env = sqlitetest.New(t, f.clock.Now)
	hasher, err := authn.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if f.authn, err = authn.NewAuthenticator(f.env.Store, hasher, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	if f.svc, err = identity.NewService(f.env.Store, f.env.Writer, f.authn, hasher, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	if f.key, err = identity.Bootstrap(ctx, f.env.Writer, hasher, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.admin = f.login(t, f.key)
	return f
}

// login authenticates a key and fails the test if it does not.
func (f *fixture) login(t *testing.T, key string) *authn.Principal {
	t.Helper()
	p, err := f.authn.Authenticate(ctx, "Bearer "+key)
	if err != nil {
		t.Fatalf("the key does not authenticate: %v", err)
	}
	return p
}

// keyFor creates a key for user as the admin and logs in with it.
func (f *fixture) keyFor(t *testing.T, user string, scope ...string) *authn.Principal {
	t.Helper()
	_, text, err := f.svc.CreateKey(ctx, f.admin, identity.NewKeyRequest{User: user, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	return f.login(t, text)
}

func (f *fixture) last(t *testing.T) audit.Record {
	t.Helper()
	rs, err := f.env.QueryAudit(ctx, audit.Query{Limit: 1})
	if err != nil || len(rs) != 1 {
		t.Fatal(err)
	}
	return rs[0]
}

// Bootstrap makes the built-in roles and an admin whose one key holds
// admin:*, all in the transaction of the system-init record.
func TestBootstrap(t *testing.T) {
	f := newFixture(t)
	if f.admin.User != identity.AdminUser || !f.admin.Allows(authz.Admin, authz.All) || f.admin.Perms.Scope != nil {
		t.Errorf("the first key: %+v", f.admin)
	}
	roles, err := f.svc.ListRoles(ctx, f.admin)
	if err != nil || len(roles) != 2 || roles[0].Name != identity.RoleAdmin || roles[1].Name != identity.RoleAuditor || !roles[0].Builtin {
		t.Errorf("roles %+v, %v", roles, err)
	}
	rs := f.env.Records(t)
	if len(rs) == 0 || rs[0].Event != audit.EventSystemInit || rs[0].Detail["admin_key_id"] != f.admin.KeyID {
		t.Errorf("first record %+v", rs)
	}
	for _, r := range rs {
		if strings.Contains(r.Target+r.Reason+r.KeyID+stringOf(r.Detail), f.key[len(f.key)-20:]) {
			t.Errorf("record %d holds the key's secret", r.Seq)
		}
	}
}

func stringOf(v any) string {
	b := strings.Builder{}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			b.WriteString(k + "=" + stringOf(x) + ";")
		}
	case []any:
		for _, x := range v {
			b.WriteString(stringOf(x) + ",")
		}
	case string:
		return v
	}
	return b.String()
}

// Nobody hands out more than they hold: a role, a user's roles, a key (the
// grants it carries: its scope, or else its user's), or a change to a user
// holding more. A scope must also lie within its user's grants.
func TestGrantContainment(t *testing.T) {
	f := newFixture(t)
	for _, r := range []identity.NewRole{
		{Name: "idm", Grants: []string{"manage-identities:*", "invoke:fin.*"}},
		{Name: "fin", Grants: []string{"invoke:fin.*"}},
		{Name: "hr", Grants: []string{"invoke:hr.*"}},
	} {
		if _, err := f.svc.CreateRole(ctx, f.admin, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []identity.NewUser{{Name: "ian", Roles: []string{"idm"}}, {Name: "hank", Roles: []string{"hr"}}, {Name: "fay", Roles: []string{"fin"}}} {
		if _, err := f.svc.CreateUser(ctx, f.admin, u); err != nil {
			t.Fatal(err)
		}
	}
	ian := f.keyFor(t, "ian")
	ianNarrow := f.keyFor(t, "ian", "manage-identities:*", "invoke:fin.lookup") // the same person, a narrower key
	for _, c := range []struct {
		name string
		p    *authn.Principal
		do   func(p *authn.Principal) error
		want fault.Kind // "" allowed
	}{
		{"a role within one's grants", ian, func(p *authn.Principal) error {
			_, err := f.svc.CreateRole(ctx, p, identity.NewRole{Name: "lookup", Grants: []string{"invoke:fin.lookup"}})
			return err
		}, ""},
		{"a role beyond one's grants", ian, func(p *authn.Principal) error {
			_, err := f.svc.CreateRole(ctx, p, identity.NewRole{Name: "hr2", Grants: []string{"invoke:hr.*"}})
			return err
		}, fault.Forbidden},
		{"an admin role", ian, func(p *authn.Principal) error {
			_, err := f.svc.CreateRole(ctx, p, identity.NewRole{Name: "root2", Grants: []string{"admin:*"}})
			return err
		}, fault.Forbidden},
		{"a role beyond one's key's scope", ianNarrow, func(p *authn.Principal) error {
			_, err := f.svc.CreateRole(ctx, p, identity.NewRole{Name: "fin2", Grants: []string{"invoke:fin.*"}})
			return err
		}, fault.Forbidden},
		{"a user with one's own powers", ian, func(p *authn.Principal) error {
			_, err := f.svc.CreateUser(ctx, p, identity.NewUser{Name: "fin-user", Roles: []string{"fin"}})
			return err
		}, ""},
		{"a user with another's powers", ian, func(p *authn.Principal) error {
			_, err := f.svc.CreateUser(ctx, p, identity.NewUser{Name: "hr-user", Roles: []string{"hr"}})
			return err
		}, fault.Forbidden},
		{"an admin user", ian, func(p *authn.Principal) error {
			_, err := f.svc.CreateUser(ctx, p, identity.NewUser{Name: "root2", Roles: []string{"admin"}})
			return err
		}, fault.Forbidden},
		{"a key for a user holding less", ian, func(p *authn.Principal) error {
			_, _, err := f.svc.CreateKey(ctx, p, identity.NewKeyRequest{User: "fay"})
			return err
		}, ""},
		{"a key for a user holding more", ian, func(p *authn.Principal) error {
			_, _, err := f.svc.CreateKey(ctx, p, identity.NewKeyRequest{User: "admin"})
			return err
		}, fault.Forbidden},
		{"a key for an admin, scoped to what one holds", ian, func(p *authn.Principal) error {
			_, _, err := f.svc.CreateKey(ctx, p, identity.NewKeyRequest{User: "admin", Scope: []string{"invoke:fin.lookup"}})
			return err
		}, ""},
		{"a key for another's powers", ian, func(p *authn.Principal) error {
			_, _, err := f.svc.CreateKey(ctx, p, identity.NewKeyRequest{User: "hank"})
			return err
		}, fault.Forbidden},
		{"a scope beyond its user's grants", f.admin, func(p *authn.Principal) error {
			_, _, err := f.svc.CreateKey(ctx, p, identity.NewKeyRequest{User: "fay", Scope: []string{"invoke:hr.*"}})
			return err
		}, fault.Invalid},
		{"disabling a user holding less", ian, func(p *authn.Principal) error {
			_, err := f.svc.SetDisabled(ctx, p, "fay", true)
			return err
		}, ""},
		{"disabling a user holding more", ian, func(p *authn.Principal) error {
			_, err := f.svc.SetDisabled(ctx, p, "admin", true)
			return err
		}, fault.Forbidden},
		{"disabling a user holding other powers", ian, func(p *authn.Principal) error {
			_, err := f.svc.SetDisabled(ctx, p, "hank", true)
			return err
		}, fault.Forbidden},
		{"any change without manage-identities", f.keyFor(t, "fay"), func(p *authn.Principal) error {
			_, err := f.svc.CreateRole(ctx, p, identity.NewRole{Name: "x", Grants: []string{"invoke:fin.a"}})
			return err
		}, fault.Forbidden},
		{"reading without manage-identities", f.keyFor(t, "hank"), func(p *authn.Principal) error {
			_, err := f.svc.ListUsers(ctx, p)
			return err
		}, fault.Forbidden},
	} {
		err := c.do(c.p)
		if c.want == "" && err != nil || c.want != "" && !fault.Is(err, c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
			continue
		}
		rec := f.last(t)
		if wantOutcome, _ := audit.OutcomeOf(err); rec.Outcome != wantOutcome || rec.Actor != c.p.User || rec.KeyID != c.p.KeyID {
			t.Errorf("%s: recorded %+v", c.name, rec)
		}
	}
	for user, want := range map[string]bool{"fin-user": true, "hr-user": false, "root2": false} {
		if _, err := f.env.Store.UserByName(ctx, user); (err == nil) != want {
			t.Errorf("user %s exists: %v, want %v", user, err == nil, want)
		}
	}
	if _, err := f.authn.Authenticate(ctx, "Bearer "+f.key); err != nil {
		t.Errorf("the admin was locked out: %v", err)
	}
}

// The last usable admin key can be neither revoked nor disabled away; a
// revoked key stops authenticating at once, and is revoked only once.
func TestKeepAnAdmin(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.RevokeKey(ctx, f.admin, f.admin.KeyID); !fault.Is(err, fault.Conflict) || !strings.Contains(err.Error(), "no enabled user with a usable admin key") {
		t.Errorf("revoking the last admin key: %v", err)
	}
	if _, err := f.svc.SetDisabled(ctx, f.admin, identity.AdminUser, true); !fault.Is(err, fault.Conflict) {
		t.Errorf("disabling the last admin: %v", err)
	}
	f.login(t, f.key) // still in
	scoped := f.keyFor(t, identity.AdminUser, "invoke:*")
	if _, err := f.svc.RevokeKey(ctx, f.admin, f.admin.KeyID); !fault.Is(err, fault.Conflict) {
		t.Errorf("a key scoped below admin is no admin key: %v", err)
	}
	second := f.keyFor(t, identity.AdminUser)
	if _, err := f.svc.RevokeKey(ctx, second, f.admin.KeyID); err != nil {
		t.Fatalf("revoking one of two admin keys: %v", err)
	}
	if _, err := f.authn.Authenticate(ctx, "Bearer "+f.key); err == nil {
		t.Error("a revoked key still authenticates")
	}
	if _, err := f.svc.RevokeKey(ctx, second, f.admin.KeyID); !fault.Is(err, fault.Conflict) {
		t.Errorf("revoking a key twice: %v", err)
	}
	if _, err := f.svc.RevokeKey(ctx, second, "not a key id"); !fault.Is(err, fault.Invalid) {
		t.Errorf("revoking a malformed id: %v", err)
	}
	if _, err := f.svc.RevokeKey(ctx, second, scoped.KeyID); err != nil {
		t.Errorf("revoking a scoped key: %v", err)
	}
}

// Only a service account has an owner, who must be an existing human.
func TestServiceAccountOwner(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.CreateUser(ctx, f.admin, identity.NewUser{Name: "olga"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   identity.NewUser
		want fault.Kind
	}{
		{"a human with an owner", identity.NewUser{Name: "h1", Owner: "olga"}, fault.Invalid},
		{"an owner who does not exist", identity.NewUser{Name: "b1", Service: true, Owner: "ghost"}, fault.NotFound},
		{"a malformed owner", identity.NewUser{Name: "b2", Service: true, Owner: "Olga!"}, fault.Invalid},
		{"an owned service account", identity.NewUser{Name: "bot", Service: true, Owner: "olga"}, ""},
		{"a service account owning one", identity.NewUser{Name: "b3", Service: true, Owner: "bot"}, fault.Invalid},
		{"a malformed name", identity.NewUser{Name: "-x"}, fault.Invalid},
		{"a malformed role", identity.NewUser{Name: "x", Roles: []string{"Admin"}}, fault.Invalid},
		{"a role that does not exist", identity.NewUser{Name: "x", Roles: []string{"nope"}}, fault.NotFound},
	} {
		_, err := f.svc.CreateUser(ctx, f.admin, c.in)
		if c.want == "" && err != nil || c.want != "" && !fault.Is(err, c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if u, err := f.svc.GetUser(ctx, f.admin, "bot"); err != nil || !u.Service || u.Owner != "olga" {
		t.Errorf("bot: %+v, %v", u, err)
	}
	p := f.keyFor(t, "bot")
	if !p.Service || p.Owner != "olga" {
		t.Errorf("the bot's key authenticates as %+v", p)
	}
}

// A key's lifetime and environment are checked and kept; the key is
// shown once and stored only as a hash.
func TestCreateKey(t *testing.T) {
	f := newFixture(t)
	k, text, err := f.svc.CreateKey(ctx, f.admin, identity.NewKeyRequest{User: identity.AdminUser, ExpiresIn: "30d", Environment: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if !k.ExpiresAt.Equal(f.clock.Now().Add(30*24*time.Hour)) || k.Environment != "prod" || k.CreatedBy != identity.AdminUser {
		t.Errorf("key %+v", k)
	}
	id, secret, err := authn.ParseKey(text)
	if err != nil || id != k.ID {
		t.Fatalf("key text %v", err)
	}
	stored, err := f.env.Store.KeyByID(ctx, id)
	if err != nil || strings.Contains(string(stored.Hash), secret) || len(stored.Hash) == 0 {
		t.Errorf("stored %+v, %v", stored, err)
	}
	if p := f.login(t, text); p.Environment != "prod" {
		t.Errorf("environment %q", p.Environment)
	}
	f.clock.Advance(30 * 24 * time.Hour)
	f.authn.Invalidate()
	if _, err := f.authn.Authenticate(ctx, "Bearer "+text); err == nil {
		t.Error("an expired key authenticates")
	}
	for _, in := range []identity.NewKeyRequest{
		{User: identity.AdminUser, ExpiresIn: "0d"},
		{User: identity.AdminUser, ExpiresIn: "forever"},
		{User: identity.AdminUser, Environment: "Prod"},
		{User: identity.AdminUser, Scope: []string{"fly:*"}},
	} {
		if _, _, err := f.svc.CreateKey(ctx, f.admin, in); !fault.Is(err, fault.Invalid) {
			t.Errorf("%+v: %v", in, err)
		}
	}
	if _, _, err := f.svc.CreateKey(ctx, f.admin, identity.NewKeyRequest{User: "nobody"}); !fault.Is(err, fault.NotFound) {
		t.Errorf("a key for nobody: %v", err)
	}
	keys, err := f.svc.ListKeys(ctx, f.admin, identity.AdminUser)
	if err != nil || len(keys) != 2 {
		t.Errorf("keys %d, %v", len(keys), err)
	}
	if _, err := f.svc.ListKeys(ctx, f.admin, "nobody"); !fault.Is(err, fault.NotFound) {
		t.Errorf("the keys of nobody: %v", err)
	}
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90m": 90 * time.Minute, "12h": 12 * time.Hour, "1d": 24 * time.Hour, "30d": 30 * 24 * time.Hour, "3650d": identity.MaxKeyLifetime, "1h30m": 90 * time.Minute,
	} {
		if got, err := identity.ParseLifetime(in); err != nil || got != want {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-1d", "3651d", "0", "-5m", "1y", "d", "1.5d", "1e3d", "87600h1ns", "9999999999999d", " 1d",
		"213504d", "-213503d", // in nanoseconds, these wrap past 2^64 to 25 minutes and to 23.6 hours
	} {
		if got, err := identity.ParseLifetime(in); err == nil {
			t.Errorf("ParseLifetime(%q) = %v, accepted", in, got)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alice": true, "a": true, "ci-bot.prod_2": true, "0day": true, strings.Repeat("a", 63): true,
		"": false, "Alice": false, "-x": false, ".x": false, "a b": false, "a/b": false, strings.Repeat("a", 64): false, "ä": false,
	} {
		if err := identity.ValidName("user", name); (err == nil) != ok {
			t.Errorf("ValidName(%q): %v", name, err)
		}
	}
}
