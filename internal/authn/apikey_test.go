package authn

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

func TestNewKeyFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, key := NewKey()
		if len(key) != KeyLen || !strings.HasPrefix(key, "ost_"+id+"_") {
			t.Fatalf("key %q (id %q) has the wrong shape", key, id)
		}
		pid, secret, err := ParseKey(key)
		if err != nil || pid != id || len(secret) != 52 {
			t.Fatalf("ParseKey(%q) = %q, %q, %v", key, pid, secret, err)
		}
		// 52 base32 characters carry 260 bits; 256 of them are random.
		raw, err := b32.DecodeString(secret)
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret decodes to %d bytes: %v", len(raw), err)
		}
		if seen[id] || seen[secret] {
			t.Fatal("repeated id or secret")
		}
		seen[id], seen[secret] = true, true
	}
}

func TestParseKeyRefuses(t *testing.T) {
	_, good := NewKey()
	for name, k := range map[string]string{
		"empty":          "",
		"no prefix":      "xxx_" + good[4:],
		"upper case":     strings.ToUpper(good),
		"short":          good[:len(good)-1],
		"long":           good + "a",
		"bad separator":  good[:20] + "-" + good[21:],
		"bad alphabet":   good[:len(good)-1] + "1",
		"padding":        good[:len(good)-1] + "=",
		"NUL":            good[:len(good)-1] + "\x00",
		"id with digits": "ost_0000000000000000_" + good[21:],
	} {
		if _, _, err := ParseKey(k); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseKey(%q) = %v", name, k, err)
		}
	}
}

func TestHasher(t *testing.T) {
	if _, err := NewHasher(make([]byte, 31)); err == nil {
		t.Error("short hashing key accepted")
	}
	h1, _ := NewHasher(bytes.Repeat([]byte{1}, 32))
	h2, _ := NewHasher(bytes.Repeat([]byte{2}, 32))
	id, key := NewKey()
	_, secret, _ := ParseKey(key)
	stored := h1.Hash(id, secret)
	if !h1.Verify(id, secret, stored) {
		t.Fatal("correct secret refused")
	}
	if h2.Verify(id, secret, stored) {
		t.Error("a different hashing key verified")
	}
	flipped := secret[:51] + map[bool]string{true: "b", false: "a"}[secret[51] == 'a']
	if h1.Verify(id, flipped, stored) {
		t.Error("wrong secret verified")
	}
	other, _ := NewKey()
	if h1.Verify(other, secret, stored) {
		t.Error("secret verified under another id")
	}
	if h1.Verify(id, secret, nil) {
		t.Error("verified against nothing")
	}
	if bytes.Contains(stored, []byte(secret)) {
		t.Error("stored form contains the secret")
	}
}

func FuzzParseKey(f *testing.F) {
	_, k := NewKey()
	f.Add(k)
	f.Add("ost__")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseKey(s)
		if err != nil {
			return
		}
		if "ost_"+id+"_"+secret != s || !ValidKeyID(id) || len(secret) != secretLen {
			t.Fatalf("ParseKey(%q) accepted a key of the wrong shape", s)
		}
	})
}

type fakeStore struct {
	creds   map[string]Credential
	lookups int
	err     error
	touched map[string]time.Time
}

func (f *fakeStore) LookupCredential(_ context.Context, id string) (Credential, error) {
	f.lookups++
	if f.err != nil {
		return Credential{}, f.err
	}
	c, ok := f.creds[id]
	if !ok {
		return c, fault.New(fault.NotFound, "no such key")
	}
	return c, nil
}

func (f *fakeStore) TouchKeys(_ context.Context, used map[string]time.Time) error {
	f.touched = used
	return nil
}

func TestAuthenticator(t *testing.T) {
	hasher, _ := NewHasher(bytes.Repeat([]byte{7}, 32))
	id, key := NewKey()
	_, secret, _ := ParseKey(key)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cred := Credential{KeyID: id, User: "alice", Hash: hasher.Hash(id, secret), Roles: []string{"r"},
		RoleGrants: authz.Grants{{Action: authz.Invoke, Resource: "x.*"}}, ExpiresAt: now.Add(time.Hour)}
	st := &fakeStore{creds: map[string]Credential{id: cred}}
	a, err := NewAuthenticator(st, hasher, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), "Bearer "+key)
	if err != nil || p.User != "alice" || p.KeyID != id || !p.Allows(authz.Discover, "x.y") {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	a.Authenticate(context.Background(), "bearer "+key) // scheme is case-insensitive
	if st.lookups != 1 {
		t.Errorf("%d store lookups, want 1 (cached)", st.lookups)
	}
	// A change in the store is invisible until Invalidate, then immediate.
	c := st.creds[id]
	c.Revoked = true
	st.creds[id] = c
	a.Invalidate()
	_, err = a.Authenticate(context.Background(), "Bearer "+key)
	var f *Failure
	if !errors.As(err, &f) || f.Reason != ReasonRevoked || !fault.Is(err, fault.Unauthenticated) {
		t.Fatalf("after revocation: %v", err)
	}
	c.Revoked = false
	st.creds[id] = c
	a.Invalidate()
	now = now.Add(time.Hour) // expiry is checked against the clock on every request
	if _, err := a.Authenticate(context.Background(), "Bearer "+key); !errors.As(err, &f) || f.Reason != ReasonExpired {
		t.Fatalf("after expiry: %v", err)
	}
	// A store failure is not an authentication failure, and never a principal.
	a.Invalidate()
	st.err = errors.New("disk on fire")
	p, err = a.Authenticate(context.Background(), "Bearer "+key)
	if p != nil || !fault.Is(err, fault.Unavailable) {
		t.Fatalf("store failure: %+v, %v", p, err)
	}
	if err := a.FlushLastUsed(context.Background()); err != nil || st.touched[id].IsZero() {
		t.Errorf("last use not flushed: %v %v", st.touched, err)
	}
}

func TestBearerToken(t *testing.T) {
	for h, ok := range map[string]bool{"Bearer abc": true, "BEARER abc": true, "Bearer": false, "Bearer  abc": false,
		"Bearer a b": false, "Basic abc": false, "": false, "Bearer abc\t": false} {
		if _, got := BearerToken(h); got != ok {
			t.Errorf("BearerToken(%q) ok = %v, want %v", h, got, ok)
		}
	}
}

// KeyValid agrees with Authenticate, without the secret: unknown, revoked,
// expired and disabled keys are not valid; a store failure is an error.
func TestKeyValid(t *testing.T) {
	hasher, _ := NewHasher(bytes.Repeat([]byte{7}, 32))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &fakeStore{creds: map[string]Credential{
		"ok":       {User: "a"},
		"later":    {User: "a", ExpiresAt: now.Add(time.Minute)},
		"expired":  {User: "a", ExpiresAt: now},
		"revoked":  {User: "a", Revoked: true},
		"disabled": {User: "a", UserDisabled: true},
	}}
	a, _ := NewAuthenticator(st, hasher, func() time.Time { return now })
	for id, want := range map[string]bool{"ok": true, "later": true, "expired": false, "revoked": false, "disabled": false, "unknown": false} {
		if got, err := a.KeyValid(context.Background(), id); err != nil || got != want {
			t.Errorf("KeyValid(%s) = %t, %v; want %t", id, got, err, want)
		}
	}
	a.Invalidate()
	st.err = errors.New("disk on fire")
	if _, err := a.KeyValid(context.Background(), "ok"); err == nil {
		t.Error("a store failure was not reported")
	}
}
