package identity

import (
	"context"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// NewRole is a request to create a role.
type NewRole struct {
	Name   string   `json:"name"`
	Grants []string `json:"grants"`
}

// CreateRole creates a role. The caller must hold every grant it carries.
func (s *Service) CreateRole(ctx context.Context, p *authn.Principal, in NewRole) (Role, error) {
	rec := p.Record(audit.EventRoleCreate, target("role", in.Name))
	rec.Detail = map[string]any{"grants": sortedCopy(in.Grants)}
	if err := ValidName("role", in.Name); err != nil {
		return Role{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	if len(in.Grants) == 0 {
		return Role{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "a role needs at least one grant (--grant ACTION:RESOURCE)"))
	}
	gs, err := authz.ParseGrants(in.Grants)
	if err != nil {
		return Role{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	role := Role{Name: in.Name, Grants: gs, CreatedAt: s.now().UTC()}
	err = s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, _ *audit.Record) error {
		if err := mayHandOut(p, gs, "role "+in.Name); err != nil {
			return err
		}
		return tx.InsertRole(ctx, role)
	})
	return role, err
}

// ListRoles lists every role with its grants.
func (s *Service) ListRoles(ctx context.Context, p *authn.Principal) ([]Role, error) {
	return read(ctx, s, p, p.Record(audit.EventRoleList, ""), authz.ManageIdentities, func() ([]Role, error) {
		return s.store.ListRoles(ctx)
	})
}
