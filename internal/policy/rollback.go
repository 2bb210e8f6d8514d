package policy

import (
	"context"
	"fmt"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Rollback puts the document of an earlier version back in force
// (manage-policy:*), as a new version: history stays append-only, and the
// record (policy-rolled-back) names the version it came from
// (rolled_back_to) and the one it replaced (previous_version). The
// document is compiled and its tests run again, as for Set: a version that
// no longer compiles with this ostiary (or fails its tests) is refused.
func (s *Service) Rollback(ctx context.Context, p *authn.Principal, version int) (Version, []TestResult, error) {
	rec := p.Record(EventRollback, "policy")
	rec.Detail = map[string]any{"rolled_back_to": version}
	switch {
	case !p.Allows(authz.ManagePolicy, authz.All):
		return Version{}, nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-policy grant"))
	case version <= 0:
		return Version{}, nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "a policy version is a positive number"))
	}
	old, err := s.store.Policy(ctx, version)
	if err != nil {
		if fault.Is(err, fault.NotFound) {
			err = fault.New(fault.NotFound, "policy version %d does not exist", version)
		}
		return Version{}, nil, audit.Refuse(ctx, s.audit, rec, err)
	}
	rec.Detail["rolled_back_to_digest"] = old.Digest
	return s.put(ctx, p, rec, []byte(old.Source), fmt.Sprintf("policy version %d cannot be put back: ", version))
}
