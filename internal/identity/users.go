package identity

import (
	"context"
	"slices"
	"strings"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// NewUser is a request to create a user.
type NewUser struct {
	Name    string   `json:"name"`
	Service bool     `json:"service"`
	Roles   []string `json:"roles"`
	// Owner is the human who answers for a service account: they can no
	// more approve its requests than their own.
	Owner string `json:"owner,omitempty"`
}

// CreateUser creates a user holding the given roles. The caller must hold
// every grant those roles carry.
func (s *Service) CreateUser(ctx context.Context, p *authn.Principal, in NewUser) (User, error) {
	rec := p.Record(audit.EventUserCreate, target("user", in.Name))
	rec.Detail = map[string]any{"service": in.Service, "roles": sortedCopy(in.Roles), "owner": in.Owner}
	if err := ValidName("user", in.Name); err != nil {
		return User{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	if in.Owner != "" {
		if !in.Service {
			return User{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "only a service account has an owner"))
		}
		if err := ValidName("user", in.Owner); err != nil {
			return User{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "owner: %s", err))
		}
	}
	for _, r := range in.Roles {
		if err := ValidName("role", r); err != nil {
			return User{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
		}
	}
	u := User{Name: in.Name, Service: in.Service, Owner: in.Owner, Roles: sortedCopy(in.Roles), CreatedAt: s.now().UTC(), CreatedBy: p.User}
	err := s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, _ *audit.Record) error {
		if u.Owner != "" {
			owner, err := tx.UserByName(ctx, u.Owner)
			if err != nil {
				return err
			}
			if owner.Service {
				return fault.New(fault.Invalid, "owner %s is a service account; a person owns a service account", owner.Name)
			}
		}
		gs, err := grantsOf(ctx, tx, u.Roles)
		if err != nil {
			return err
		}
		if err := mayHandOut(p, gs, "user "+u.Name); err != nil {
			return err
		}
		return tx.InsertUser(ctx, u)
	})
	return u, err
}

// ListUsers lists every user.
func (s *Service) ListUsers(ctx context.Context, p *authn.Principal) ([]User, error) {
	return read(ctx, s, p, p.Record(audit.EventUserList, ""), authz.ManageIdentities, func() ([]User, error) {
		return s.store.ListUsers(ctx)
	})
}

// GetUser returns one user.
func (s *Service) GetUser(ctx context.Context, p *authn.Principal, name string) (User, error) {
	return read(ctx, s, p, p.Record(audit.EventUserShow, target("user", name)), authz.ManageIdentities, func() (User, error) {
		return s.store.UserByName(ctx, name)
	})
}

// SetDisabled disables or enables a user. Disabling takes effect on the
// user's very next request, through any of their keys. It refuses to disable
// the last user holding a usable admin key, and to disable anyone who holds
// grants the caller does not (that would let a lesser admin lock out a
// greater one).
func (s *Service) SetDisabled(ctx context.Context, p *authn.Principal, name string, disabled bool) (User, error) {
	event := audit.EventUserEnable
	if disabled {
		event = audit.EventUserDisable
	}
	var u User
	err := s.mutate(ctx, p, p.Record(event, target("user", name)), func(ctx context.Context, tx TxStore, r *audit.Record) error {
		var err error
		if u, err = tx.UserByName(ctx, name); err != nil {
			return err
		}
		gs, err := grantsOf(ctx, tx, u.Roles)
		if err != nil {
			return err
		}
		if err := mayHandOut(p, gs, "changing user "+name); err != nil {
			return err
		}
		was := u.Disabled
		if err := tx.SetUserDisabled(ctx, name, disabled); err != nil {
			return err
		}
		u.Disabled = disabled
		if !disabled {
			return nil
		}
		if err := s.keepAnAdmin(ctx, tx); err != nil {
			return err
		}
		if s.loss != nil && !was {
			return s.loss.AccessLost(ctx, tx.(audit.Tx), name, true, gs, nil, r)
		}
		return nil
	})
	return u, err
}

// EventUserRoles records a change of a user's roles.
const EventUserRoles = "user-roles-set"

// SetRoles replaces a user's roles. The caller must hold every grant of
// the roles taken away and of those given; it refuses to leave no usable
// admin key. Taking away what let the user reach secret values marks
// those secrets for rotation (AccessLoss), on this change's record.
func (s *Service) SetRoles(ctx context.Context, p *authn.Principal, name string, roles []string) (User, error) {
	roles = sortedCopy(roles)
	rec := p.Record(EventUserRoles, target("user", name))
	rec.Detail = map[string]any{"roles": roles}
	for _, r := range roles {
		if err := ValidName("role", r); err != nil {
			return User{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
		}
	}
	var u User
	err := s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, r *audit.Record) error {
		var err error
		if u, err = tx.UserByName(ctx, name); err != nil {
			return err
		}
		before, err := grantsOf(ctx, tx, u.Roles)
		if err != nil {
			return err
		}
		after, err := grantsOf(ctx, tx, roles)
		if err != nil {
			return err
		}
		if err := mayHandOut(p, append(slices.Clone(before), after...), "changing user "+name); err != nil {
			return err
		}
		r.Detail["previous_roles"] = u.Roles
		if err := tx.SetUserRoles(ctx, name, roles); err != nil {
			return err
		}
		u.Roles = roles
		if err := s.keepAnAdmin(ctx, tx); err != nil {
			return err
		}
		if s.loss != nil && !u.Disabled {
			return s.loss.AccessLost(ctx, tx.(audit.Tx), name, false, before, after, r)
		}
		return nil
	})
	return u, err
}

// RolesBase identifies a user's roles for a reviewed change: their sorted
// names, comma-separated ("" for none).
func RolesBase(roles []string) string { return strings.Join(sortedCopy(roles), ",") }

// SetRolesTx replaces a user's roles inside tx (a reviewed change applied
// with its record r), provided they are still base (RolesBase), else a
// stale conflict (policy.Stale). by, who applies it, must hold every grant
// taken away or given, as for SetRoles; an admin key must remain, and
// access losses are told. Call Invalidate after the commit.
func (s *Service) SetRolesTx(ctx context.Context, tx audit.Tx, r *audit.Record, by *authn.Principal, name string, roles []string, base string) error {
	ts, err := txStore(tx)
	if err != nil {
		return err
	}
	roles = sortedCopy(roles)
	u, err := ts.UserByName(ctx, name)
	if err != nil {
		return err
	}
	if now := RolesBase(u.Roles); now != base {
		return fault.Stale(base, now)
	}
	before, err := grantsOf(ctx, ts, u.Roles)
	if err != nil {
		return err
	}
	after, err := grantsOf(ctx, ts, roles)
	if err != nil {
		return err
	}
	if err := mayHandOut(by, append(slices.Clone(before), after...), "changing user "+name); err != nil {
		return err
	}
	if r.Detail == nil {
		r.Detail = map[string]any{}
	}
	r.Detail["roles"], r.Detail["previous_roles"] = roles, u.Roles
	if err := ts.SetUserRoles(ctx, name, roles); err != nil {
		return err
	}
	if err := s.keepAnAdmin(ctx, ts); err != nil {
		return err
	}
	if s.loss != nil && !u.Disabled {
		return s.loss.AccessLost(ctx, tx, name, false, before, after, r)
	}
	return nil
}

// Invalidate drops cached credentials (after a change SetRolesTx made).
func (s *Service) Invalidate() { s.cache.Invalidate() }
