package identity

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// MaxKeyLifetime bounds --expires.
const MaxKeyLifetime = 10 * 365 * 24 * time.Hour

// ParseLifetime parses a key lifetime: a Go duration ("90m", "12h") or a
// whole number of days ("30d").
func ParseLifetime(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		if n < 1 || n > int(MaxKeyLifetime/(24*time.Hour)) {
			n = 0 // refused below: multiplied, a count out of range could wrap around into it
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 || d > MaxKeyLifetime {
		return 0, fmt.Errorf("invalid lifetime %q: want a positive duration such as 12h or 30d, at most 3650d", clip(s))
	}
	return d, nil
}

// NewKeyRequest is a request to create a key.
type NewKeyRequest struct {
	User      string   `json:"user"`
	ExpiresIn string   `json:"expires_in,omitempty"` // ParseLifetime syntax; empty: never
	Scope     []string `json:"scope,omitempty"`      // empty: unscoped
	// Environment is the key's environment; empty: authn.DefaultEnvironment.
	Environment string `json:"environment,omitempty"`
}

// CreateKey creates an API key for a user and returns it with its secret
// text, which exists nowhere else: it is shown once. A scope must lie within
// the user's grants, and the caller must hold every grant the key carries.
func (s *Service) CreateKey(ctx context.Context, p *authn.Principal, in NewKeyRequest) (Key, string, error) {
	id, secretKey := authn.NewKey()
	rec := p.Record(audit.EventKeyCreate, target("key", id))
	if in.Environment == "" {
		in.Environment = authn.DefaultEnvironment
	}
	rec.Detail = map[string]any{"user": in.User, "scope": sortedCopy(in.Scope), "expires_in": in.ExpiresIn, "environment": in.Environment}
	now := s.now().UTC()
	k := Key{ID: id, User: in.User, Environment: in.Environment, CreatedAt: now, CreatedBy: p.User}
	if !authn.ValidEnvironment(in.Environment) {
		rec.Detail["environment"] = "?"
		return Key{}, "", audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "invalid environment name: 1–32 lower-case letters, digits and '-', starting with a letter"))
	}
	if in.ExpiresIn != "" {
		d, err := ParseLifetime(in.ExpiresIn)
		if err != nil {
			return Key{}, "", audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
		}
		k.ExpiresAt = now.Add(d)
	}
	if len(in.Scope) > 0 {
		gs, err := authz.ParseGrants(in.Scope)
		if err != nil {
			return Key{}, "", audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
		}
		k.Scope = gs
	}
	_, secret, _ := authn.ParseKey(secretKey)
	k.Hash = s.hasher.Hash(id, secret)
	err := s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, _ *audit.Record) error {
		u, err := tx.UserByName(ctx, in.User)
		if err != nil {
			return err
		}
		userGrants, err := grantsOf(ctx, tx, u.Roles)
		if err != nil {
			return err
		}
		carried := userGrants
		if k.Scope != nil {
			if g, ok := userGrants.CoversAll(k.Scope); !ok {
				return fault.New(fault.Invalid, "scope %s is not within the grants of user %s", g, u.Name)
			}
			carried = k.Scope
		}
		if err := mayHandOut(p, carried, "a key for "+u.Name); err != nil {
			return err
		}
		return tx.InsertKey(ctx, k)
	})
	if err != nil {
		return Key{}, "", err
	}
	return k, secretKey, nil
}

// ListKeys lists keys, of one user if user is not empty.
func (s *Service) ListKeys(ctx context.Context, p *authn.Principal, user string) ([]Key, error) {
	rec := p.Record(audit.EventKeyList, "")
	if user != "" {
		rec.Target = target("user", user)
	}
	return read(ctx, s, p, rec, authz.ManageIdentities, func() ([]Key, error) {
		if user != "" {
			if _, err := s.store.UserByName(ctx, user); err != nil {
				return nil, err
			}
		}
		return s.store.ListKeys(ctx, user)
	})
}

// RevokeKey revokes a key with immediate effect. It refuses to revoke the
// last usable admin key.
func (s *Service) RevokeKey(ctx context.Context, p *authn.Principal, id string) (Key, error) {
	var k Key
	rec := p.Record(audit.EventKeyRevoke, target("key", id))
	if !authn.ValidKeyID(id) {
		return k, audit.Refuse(ctx, s.audit, p.Record(audit.EventKeyRevoke, "key:?"), fault.New(fault.Invalid, "%q is not a key id (16 characters a–z, 2–7)", clip(id)))
	}
	err := s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, r *audit.Record) error {
		var err error
		if k, err = tx.KeyByID(ctx, id); err != nil {
			return err
		}
		r.Detail = map[string]any{"user": k.User}
		if !k.RevokedAt.IsZero() {
			return fault.New(fault.Conflict, "key %s is already revoked", id)
		}
		k.RevokedAt = s.now().UTC()
		if err := tx.RevokeKey(ctx, id, k.RevokedAt); err != nil {
			return err
		}
		return s.keepAnAdmin(ctx, tx)
	})
	return k, err
}
