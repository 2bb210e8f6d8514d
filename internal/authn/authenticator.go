package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/lru"
)

// Credential is what the store knows about one API key and its user.
type Credential struct {
	KeyID        string
	User         string
	Service      bool
	Owner        string // a service account's owning human
	UserDisabled bool
	Hash         []byte
	ExpiresAt    time.Time // zero: never
	Revoked      bool
	Roles        []string
	RoleGrants   authz.Grants
	Scope        authz.Grants // nil: unscoped
	Environment  string
}

// Store is what the Authenticator reads and writes.
type Store interface {
	// LookupCredential returns the credential for a key id, or an error of
	// kind fault.NotFound.
	LookupCredential(ctx context.Context, keyID string) (Credential, error)
	// TouchKeys records last-use times.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// Reason codes for authentication failures: recorded in audit, never shown
// to the client, who always sees the same 401.
const (
	ReasonMissing   = "credential-missing"
	ReasonMalformed = "credential-malformed"
	ReasonUnknown   = "key-unknown"
	ReasonMismatch  = "key-secret-mismatch"
	ReasonRevoked   = "key-revoked"
	ReasonExpired   = "key-expired"
	ReasonDisabled  = "user-disabled"
)

// Failure is an authentication failure. Its Reason and KeyID go to the audit
// log; clients see only fault.Unauthenticated's generic message.
type Failure struct {
	Reason string
	KeyID  string // when the presented key had a parsable id
	User   string // when the key id was known
}

func (f *Failure) Error() string { return "authentication failed: " + f.Reason }

// Unwrap makes a Failure a fault of kind Unauthenticated.
func (f *Failure) Unwrap() error { return fault.New(fault.Unauthenticated, "authentication required") }

// maxCached bounds the credential cache; it is emptied when full.
const maxCached = 10000

var errUnknownKey = fault.New(fault.NotFound, "no such key")

// Authenticator verifies API keys. It caches credentials in memory, but any
// identity change calls Invalidate before it is acknowledged, so no cached
// entry outlives a revocation, a disabling or a role change.
type Authenticator struct {
	store  Store
	hasher *Hasher
	now    func() time.Time

	gen     atomic.Uint64
	mu      sync.Mutex
	cache   map[string]cachedCred
	unknown *lru.Map[string, uint64] // key ids the store does not have, with the generation that saw it

	touchMu sync.Mutex
	touched map[string]time.Time
}

type cachedCred struct {
	cred Credential
	gen  uint64
}

// NewAuthenticator returns an Authenticator over store.
func NewAuthenticator(store Store, hasher *Hasher, now func() time.Time) (*Authenticator, error) {
	if store == nil || hasher == nil || now == nil {
		return nil, fmt.Errorf("authn: authenticator needs a store, a hasher and a clock")
	}
	return &Authenticator{store: store, hasher: hasher, now: now,
		cache: map[string]cachedCred{}, unknown: lru.New[string, uint64](maxCached), touched: map[string]time.Time{}}, nil
}

// Invalidate drops every cached credential. Callers changing users, roles or
// keys call it after their change is committed and before they acknowledge it.
func (a *Authenticator) Invalidate() {
	a.gen.Add(1)
	a.mu.Lock()
	clear(a.cache)
	a.unknown.Clear()
	a.mu.Unlock()
}

// BearerToken extracts the token from an Authorization header value.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// Authenticate verifies the Authorization header value of one request. On
// failure it returns a *Failure (kind Unauthenticated); if the store cannot
// be read it returns a fault.Unavailable error: never a principal.
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (*Principal, error) {
	start := time.Now()
	p, err := a.authenticate(ctx, authorization)
	var f *Failure
	if errors.As(err, &f) {
		// Every failure takes at least failureFloor, so that a key id the
		// store had to be asked about (unknown, or not used for a while)
		// cannot be told by timing from one in the cache.
		if wait := failureFloor - time.Since(start); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	return p, err
}

// failureFloor is the least time a failed authentication takes: above a
// store lookup on an idle machine.
const failureFloor = 2 * time.Millisecond

func (a *Authenticator) authenticate(ctx context.Context, authorization string) (*Principal, error) {
	if authorization == "" {
		return nil, &Failure{Reason: ReasonMissing}
	}
	token, ok := BearerToken(authorization)
	if !ok {
		return nil, &Failure{Reason: ReasonMalformed}
	}
	id, secret, err := ParseKey(token)
	if err != nil {
		return nil, &Failure{Reason: ReasonMalformed}
	}
	cred, err := a.credential(ctx, id)
	if fault.Is(err, fault.NotFound) {
		a.hasher.Verify(id, secret, nil) // same work as for a known id
		return nil, &Failure{Reason: ReasonUnknown, KeyID: id}
	}
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, "authenticate", err)
	}
	if !a.hasher.Verify(id, secret, cred.Hash) {
		return nil, &Failure{Reason: ReasonMismatch, KeyID: id, User: cred.User}
	}
	now := a.now()
	switch {
	case cred.Revoked:
		return nil, &Failure{Reason: ReasonRevoked, KeyID: id, User: cred.User}
	case cred.UserDisabled:
		return nil, &Failure{Reason: ReasonDisabled, KeyID: id, User: cred.User}
	case !cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt):
		return nil, &Failure{Reason: ReasonExpired, KeyID: id, User: cred.User}
	}
	a.touch(id, now)
	return &Principal{
		User:        cred.User,
		Service:     cred.Service,
		Owner:       cred.Owner,
		Roles:       cred.Roles,
		KeyID:       id,
		Environment: cred.Environment,
		Perms:       authz.Permissions{Roles: cred.RoleGrants, Scope: cred.Scope},
	}, nil
}

// KeyValid reports whether the key with this id would authenticate now
// (given its secret): known, not revoked or expired, its user enabled.
func (a *Authenticator) KeyValid(ctx context.Context, id string) (bool, error) {
	cred, err := a.credential(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !cred.Revoked && !cred.UserDisabled && (cred.ExpiresAt.IsZero() || a.now().Before(cred.ExpiresAt)), nil
}

func (a *Authenticator) credential(ctx context.Context, id string) (Credential, error) {
	gen := a.gen.Load() // read before the store, so a racing change leaves this entry stale
	a.mu.Lock()
	c, ok := a.cache[id]
	missing, isUnknown := a.unknown.Get(id)
	a.mu.Unlock()
	if ok && c.gen == gen {
		return c.cred, nil
	}
	if isUnknown && missing == gen {
		return Credential{}, errUnknownKey
	}
	// Unknown ids are cached too, so that an unknown id and a known one
	// with a wrong secret cost the same (one cached lookup and one HMAC)
	// and cannot be told apart by timing. Creating a key invalidates the
	// cache, so a cached unknown id never hides a new key.
	cred, err := a.store.LookupCredential(ctx, id)
	unknown := fault.Is(err, fault.NotFound)
	if err != nil && !unknown {
		return Credential{}, err
	}
	a.mu.Lock()
	if unknown {
		a.unknown.Put(id, gen) // bounded apart from known keys: a flood of ids evicts none of them
	} else {
		if len(a.cache) >= maxCached {
			clear(a.cache)
		}
		a.cache[id] = cachedCred{cred: cred, gen: gen}
	}
	a.mu.Unlock()
	if unknown {
		return Credential{}, errUnknownKey
	}
	return cred, nil
}

func (a *Authenticator) touch(id string, t time.Time) {
	a.touchMu.Lock()
	a.touched[id] = t
	a.touchMu.Unlock()
}

// FlushLastUsed writes the last-use times gathered since the previous flush.
func (a *Authenticator) FlushLastUsed(ctx context.Context) error {
	a.touchMu.Lock()
	used := a.touched
	a.touched = map[string]time.Time{}
	a.touchMu.Unlock()
	if len(used) == 0 {
		return nil
	}
	return a.store.TouchKeys(ctx, used)
}
