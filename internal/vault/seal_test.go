package vault_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/vault"
)

var ctx = context.Background()

const value = "s3cret-canary-7f1e2d3c4b5a"

func master(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

var admin = &authn.Principal{User: "root", KeyID: "rootkey", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.Admin, Resource: authz.All}}}}

// fixture is a vault on a real store; reads of sealed secrets go through
// tamper, if set, as a hostile store or disk would serve them.
type fixture struct {
	env    *sqlitetest.Env
	clock  *testutil.Clock
	store  *tamperStore
	vault  *vault.Vault
	master []byte
}

type tamperStore struct {
	vault.Store
	latest func(name, env string) (vault.Sealed, error) // nil: as stored
	wraps  []vault.WrappedKey                           // non-nil: served instead of the stored wrappings
}

func (s *tamperStore) LatestSecret(ctx context.Context, name, env string) (vault.Sealed, error) {
	if s.latest != nil {
		return s.latest(name, env)
	}
	return s.Store.LatestSecret(ctx, name, env)
}

func (s *tamperStore) WrappedDataKeys(ctx context.Context) ([]vault.WrappedKey, error) {
	if s.wraps != nil {
		return s.wraps, nil
	}
	return s.Store.WrappedDataKeys(ctx)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: testutil.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)), master: master(1)}
	f.env = sqlitetest.New(t, f.clock.Now)
	f.store = &tamperStore{Store: f.env.Store}
	f.vault = f.open(t, f.master)
	return f
}

// open opens another vault on the fixture's store with key m.
func (f *fixture) open(t *testing.T, m []byte) *vault.Vault {
	t.Helper()
	v, err := vault.New(f.store, f.env.Writer, m, f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	return v
}

func (f *fixture) set(t *testing.T, name, env, val string, upstreams ...string) vault.Secret {
	t.Helper()
	s, err := f.vault.Set(ctx, admin, name, env, []byte(val), upstreams)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) resolve(name, upstream, env string) (vault.Injected, error) {
	return f.vault.Resolve(ctx, name, upstream, env, audit.Record{Outcome: audit.Success, Actor: "alice", KeyID: "alicekey", RequestID: "req-1"}) // as the pool builds it
}

// noValue fails the test if any audit record shows one of values.
func (f *fixture) noValue(t *testing.T, values ...string) {
	t.Helper()
	for _, r := range f.env.Records(t) {
		canon, _ := r.Canonical()
		for _, v := range values {
			if bytes.Contains(canon, []byte(v)) {
				t.Errorf("audit record %d (%s) shows a secret value", r.Seq, r.Event)
			}
		}
	}
}

func TestNewChecksItsDependencies(t *testing.T) {
	env := sqlitetest.New(t, time.Now)
	for name, newVault := range map[string]func() (*vault.Vault, error){
		"no store":       func() (*vault.Vault, error) { return vault.New(nil, env.Writer, master(1), time.Now) },
		"no auditor":     func() (*vault.Vault, error) { return vault.New(env.Store, nil, master(1), time.Now) },
		"no clock":       func() (*vault.Vault, error) { return vault.New(env.Store, env.Writer, master(1), nil) },
		"a short master": func() (*vault.Vault, error) { return vault.New(env.Store, env.Writer, master(1)[:31], time.Now) },
	} {
		if _, err := newVault(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A value is sealed under the data key, bound to its name, environment and
// version: what the store holds is not the value, Resolve returns it only
// for an upstream in its scope and only in its environment, and neither
// the records of setting and resolving it nor any error show it.
func TestSealAndResolve(t *testing.T) {
	f := newFixture(t)
	f.set(t, "fin", "", "old-"+value, "fin")
	s := f.set(t, "fin", "", value, "fin", "fin-b")
	prod := f.set(t, "fin", "prod", "prod-"+value, "fin")
	if s.Version != 2 || s.Environment != authn.DefaultEnvironment || prod.Version != 1 {
		t.Errorf("versions %d (%s), prod %d", s.Version, s.Environment, prod.Version)
	}
	sealed, err := f.env.Store.LatestSecret(ctx, "fin", authn.DefaultEnvironment)
	if err != nil || bytes.Contains(sealed.Ciphertext, []byte(value)) || len(sealed.Nonce) != 12 {
		t.Errorf("stored %x (nonce %d bytes), %v", sealed.Ciphertext, len(sealed.Nonce), err)
	}
	for _, c := range []struct {
		upstream, env, want string
		version             int
		kind                fault.Kind
	}{
		{"fin", authn.DefaultEnvironment, value, 2, ""},
		{"fin-b", authn.DefaultEnvironment, value, 2, ""},
		{"fin", "prod", "prod-" + value, 1, ""},
		{"fin-b", "prod", "", 0, fault.Forbidden}, // prod's value is scoped to fin only
		{"hr", authn.DefaultEnvironment, "", 0, fault.Forbidden},
		{"fin", "staging", "", 0, fault.Forbidden}, // no value there, and no falling back to another
	} {
		got, err := f.resolve("fin", c.upstream, c.env)
		if c.kind != "" {
			if !fault.Is(err, c.kind) || got.Value != nil || strings.Contains(err.Error(), value) {
				t.Errorf("%s in %s: %q, %v; want %s", c.upstream, c.env, got.Value, err, c.kind)
			}
			continue
		}
		if err != nil || string(got.Value) != c.want || got.Version != c.version {
			t.Errorf("%s in %s: %q v%d, %v", c.upstream, c.env, got.Value, got.Version, err)
		}
	}
	rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: vault.EventAccess, Limit: 10})
	if len(rs) != 6 || rs[0].Outcome != audit.Denied || rs[0].Detail["environment"] != "staging" || rs[5].Outcome != audit.Success ||
		fmt.Sprint(rs[5].Detail["version"]) != "2" || rs[5].Actor != "alice" || rs[5].Target != "secret:fin" {
		t.Errorf("access records: %+v", rs)
	}
	f.noValue(t, value, "old-"+value, "prod-"+value)
	list, err := f.vault.List(ctx, admin, false)
	if err != nil || len(list) != 2 {
		t.Errorf("list %+v, %v", list, err)
	}
	f.env.Verify(t)
}

// A ciphertext is opened only under the name, environment and version it
// was sealed for, and only as sealed: a flipped bit, another secret's row,
// another environment's or version's row are all refused, on record, and
// the refusal shows no value.
func TestTamperedCiphertextRefused(t *testing.T) {
	f := newFixture(t)
	f.set(t, "fin", "", value, "fin")
	f.set(t, "fin", "", "v2-"+value, "fin")
	f.set(t, "hr", "", "hr-"+value, "fin")
	f.set(t, "fin", "prod", "prod-"+value, "fin")
	stored := func(name, env string) vault.Sealed {
		s, err := f.env.Store.LatestSecret(ctx, name, env)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fin, hr, prod := stored("fin", "default"), stored("hr", "default"), stored("fin", "prod")
	for name, serve := range map[string]func() vault.Sealed{
		"a flipped ciphertext bit": func() vault.Sealed {
			s := fin
			s.Ciphertext = append([]byte(nil), fin.Ciphertext...)
			s.Ciphertext[3] ^= 0x01
			return s
		},
		"a flipped nonce bit": func() vault.Sealed {
			s := fin
			s.Nonce = append([]byte(nil), fin.Nonce...)
			s.Nonce[0] ^= 0x80
			return s
		},
		"a truncated ciphertext": func() vault.Sealed { s := fin; s.Ciphertext = fin.Ciphertext[:len(fin.Ciphertext)-1]; return s },
		"another secret's row":   func() vault.Sealed { s := hr; s.Name = "fin"; return s },
		"another environment's":  func() vault.Sealed { s := prod; s.Environment = "default"; return s },
		"another version's":      func() vault.Sealed { s := fin; s.Version = 1; return s }, // v2's bytes as v1
	} {
		f.store.latest = func(string, string) (vault.Sealed, error) { return serve(), nil }
		got, err := f.resolve("fin", "fin", "default")
		if !fault.Is(err, fault.Unavailable) || got.Value != nil || strings.Contains(err.Error(), "canary") {
			t.Errorf("%s: %q, %v", name, got.Value, err)
		}
		rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: vault.EventAccess, Limit: 1})
		if len(rs) != 1 || rs[0].Outcome != audit.Failed || rs[0].Reason != string(fault.Unavailable) {
			t.Errorf("%s: recorded %+v", name, rs)
		}
	}
	f.store.latest = nil
	if got, err := f.resolve("fin", "fin", "default"); err != nil || string(got.Value) != "v2-"+value {
		t.Errorf("as stored: %q, %v", got.Value, err)
	}
	f.noValue(t, value, "v2-"+value, "hr-"+value, "prod-"+value)
}

// The data key opens only with the master key that wraps it, and a wrong
// key or a malformed wrapping stops the vault plainly, without showing
// either key; until the vault is open, nothing is sealed or resolved.
func TestMasterKey(t *testing.T) {
	f := newFixture(t)
	f.set(t, "fin", "", value, "fin")
	again := f.open(t, f.master)
	if got, err := again.Resolve(ctx, "fin", "fin", "default", audit.Record{}); err != nil || string(got.Value) != value {
		t.Errorf("reopened with the same key: %q, %v", got.Value, err)
	}
	wrong, err := vault.New(f.store, f.env.Writer, master(2), f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "does not open") || strings.Contains(err.Error(), hex.EncodeToString(master(2))) ||
		strings.Contains(err.Error(), hex.EncodeToString(f.master)) {
		t.Errorf("a wrong master key: %v", err)
	}
	if _, err := wrong.Resolve(ctx, "fin", "fin", "default", audit.Record{}); !fault.Is(err, fault.Unavailable) {
		t.Errorf("resolving in a vault that did not open: %v", err)
	}
	if _, err := wrong.Set(ctx, admin, "x", "", []byte("y"), []string{"fin"}); !fault.Is(err, fault.Unavailable) {
		t.Errorf("setting in a vault that did not open: %v", err)
	}
	if _, err := f.env.Store.LatestSecret(ctx, "x", "default"); !fault.Is(err, fault.NotFound) {
		t.Errorf("a closed vault stored a secret: %v", err)
	}
	f.store.wraps = []vault.WrappedKey{{KeyID: 1, Wrapped: []byte{1, 2, 3}}}
	bad, _ := vault.New(f.store, f.env.Writer, f.master, f.clock.Now)
	if err := bad.Open(ctx); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("a malformed wrapping: %v", err)
	}
	f.store.wraps = nil
	if rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: vault.EventInit, Limit: 10}); len(rs) != 1 {
		t.Errorf("%d data keys were made", len(rs))
	}
}

// Rotating the master key keeps the data key: during the move both keys
// open the vault, after retiring the others only the new one; values and
// audit search tokens survive. Only an admin rotates.
func TestRewrap(t *testing.T) {
	f := newFixture(t)
	f.set(t, "fin", "", value, "fin")
	scrubbed := f.vault.ScrubAudit("Authorization: Bearer abcdefghijklmnopqrstuvwxyz")
	noAdmin := &authn.Principal{User: "ivy", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ManageSecrets, Resource: authz.All}}}}
	for name, c := range map[string]struct {
		p      *authn.Principal
		key    []byte
		retire bool
		kind   fault.Kind
	}{
		"not an admin":     {noAdmin, master(2), false, fault.Forbidden},
		"a short key":      {admin, master(2)[:16], false, fault.Invalid},
		"the same key":     {admin, f.master, false, fault.Invalid},
		"a new key, added": {admin, master(2), false, ""},
	} {
		n, err := f.vault.Rewrap(ctx, c.p, c.key, c.retire)
		if c.kind == "" && (err != nil || n != 2) || c.kind != "" && !fault.Is(err, c.kind) {
			t.Errorf("%s: %d, %v", name, n, err)
		}
	}
	for _, m := range [][]byte{f.master, master(2)} {
		v := f.open(t, m)
		if got, err := v.Resolve(ctx, "fin", "fin", "default", audit.Record{}); err != nil || string(got.Value) != value {
			t.Errorf("during the move: %q, %v", got.Value, err)
		}
		if v.ScrubAudit("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") != scrubbed {
			t.Error("a search token changed with the master key")
		}
	}
	if n, err := f.open(t, master(2)).Rewrap(ctx, admin, master(2), true); err != nil || n != 1 {
		t.Fatalf("retiring the others: %d, %v", n, err)
	}
	old, _ := vault.New(f.store, f.env.Writer, f.master, f.clock.Now)
	if err := old.Open(ctx); err == nil {
		t.Error("the retired master key still opens the vault")
	}
	if got, err := f.open(t, master(2)).Resolve(ctx, "fin", "fin", "default", audit.Record{}); err != nil || string(got.Value) != value {
		t.Errorf("after the move: %q, %v", got.Value, err)
	}
	for _, r := range f.env.Records(t) {
		canon, _ := r.Canonical()
		for _, m := range [][]byte{f.master, master(2)} {
			if bytes.Contains(canon, []byte(hex.EncodeToString(m))) {
				t.Errorf("record %d (%s) holds a master key", r.Seq, r.Event)
			}
		}
	}
}

// Setting a secret needs manage-secrets, a valid name and environment, a
// value of 1 to MaxValue bytes and a scope; each refusal is on record
// without the value, and stores nothing.
func TestSetValidates(t *testing.T) {
	f := newFixture(t)
	reader := &authn.Principal{User: "ivy", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}
	for _, c := range []struct {
		name       string
		p          *authn.Principal
		secret     string
		env, value string
		upstreams  []string
		kind       fault.Kind
	}{
		{"no grant", reader, "fin", "", value, []string{"fin"}, fault.Forbidden},
		{"bad name", admin, "fin key", "", value, []string{"fin"}, fault.Invalid},
		{"bad environment", admin, "fin", "Prod", value, []string{"fin"}, fault.Invalid},
		{"empty", admin, "fin", "", "", []string{"fin"}, fault.Invalid},
		{"too large", admin, "fin", "", strings.Repeat("x", vault.MaxValue+1), []string{"fin"}, fault.Invalid},
		{"no scope", admin, "fin", "", value, nil, fault.Invalid},
	} {
		if _, err := f.vault.Set(ctx, c.p, c.secret, c.env, []byte(c.value), c.upstreams); !fault.Is(err, c.kind) {
			t.Errorf("%s: %v, want %s", c.name, err, c.kind)
		}
		rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: vault.EventSet, Limit: 1})
		if len(rs) != 1 || rs[0].Outcome == audit.Success {
			t.Errorf("%s: recorded %+v", c.name, rs)
		}
	}
	if list, _ := f.vault.List(ctx, admin, false); len(list) != 0 {
		t.Errorf("refused values were stored: %+v", list)
	}
	if _, err := f.vault.List(ctx, reader, false); !fault.Is(err, fault.Forbidden) {
		t.Errorf("listing without manage-secrets: %v", err)
	}
	f.noValue(t, value)
}

// Credential shapes in audit text become search tokens keyed by the data
// key: an investigator with read-audit and a suspected value finds the
// records that held it; before the vault opens they are plainly redacted.
func TestScrubAuditAndSearchToken(t *testing.T) {
	const bearer = "abcdefghijklmnopqrstuvwxyz012345"
	var closed *vault.Vault
	if got := closed.ScrubAudit("token Bearer " + bearer); got != "token Bearer [REDACTED]" {
		t.Errorf("before the vault opens: %q", got)
	}
	f := newFixture(t)
	text := "called with Authorization: Bearer " + bearer + " and AKIAABCDEFGHIJKLMNOP"
	got := f.vault.ScrubAudit(text)
	if strings.Contains(got, bearer) || strings.Contains(got, "AKIAABCDEFGHIJKLMNOP") || strings.Count(got, "[REDACTED hmac:") != 2 {
		t.Errorf("scrubbed %q", got)
	}
	if plain := "nothing to see, 42 times"; f.vault.ScrubAudit(plain) != plain {
		t.Error("a text without credentials changed")
	}
	auditor := &authn.Principal{User: "ivy", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}
	tok, err := f.vault.SearchToken(ctx, auditor, bearer)
	if err != nil || !strings.Contains(got, "[REDACTED "+tok+"]") {
		t.Errorf("token %q, %v; not in %q", tok, err, got)
	}
	if other, _ := f.vault.SearchToken(ctx, auditor, bearer+"x"); other == tok {
		t.Error("two values share a token")
	}
	tools := &authn.Principal{User: "tom", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ManageTools, Resource: authz.All}}}}
	if _, err := f.vault.SearchToken(ctx, tools, bearer); !fault.Is(err, fault.Forbidden) {
		t.Errorf("a token without read-audit: %v", err)
	}
	if _, err := f.vault.SearchToken(ctx, auditor, ""); !fault.Is(err, fault.Invalid) {
		t.Errorf("the token of nothing: %v", err)
	}
	f.noValue(t, bearer)
}

func TestRefsAndExpand(t *testing.T) {
	in := "Bearer ${secret:fin-key} and ${secret:other.v2}, not ${secret:} or ${SECRET:x} or ${secret:-x}"
	if got := vault.Refs(in); fmt.Sprint(got) != "[fin-key other.v2]" {
		t.Errorf("refs %v", got)
	}
	out, err := vault.Expand(in, func(name string) ([]byte, error) { return []byte("<" + name + ">"), nil })
	if err != nil || out != "Bearer <fin-key> and <other.v2>, not ${secret:} or ${SECRET:x} or ${secret:-x}" {
		t.Errorf("expanded %q, %v", out, err)
	}
	boom := fault.New(fault.Forbidden, "no")
	if _, err := vault.Expand(in, func(string) ([]byte, error) { return nil, boom }); err != boom {
		t.Errorf("an unresolvable reference: %v", err)
	}
	for name, ok := range map[string]bool{"fin": true, "Fin.Key-2_x": true, strings.Repeat("a", 64): true, "": false, "-x": false, "a b": false, strings.Repeat("a", 65): false} {
		if vault.ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v", name, !ok)
		}
	}
}
