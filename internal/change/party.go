package change

import (
	"context"
	"slices"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// notTheAuthors refuses a reviewer who answers for the proposal's author:
// the human owning the service account that proposed it (as recorded when
// it was proposed, or as the directory says now). The author themselves
// and service accounts are refused before.
func (s *Service) notTheAuthors(ctx context.Context, p *authn.Principal, pr Proposal) error {
	owners := []string{pr.AuthorOwner}
	u, err := s.cfg.Identity.UserByName(ctx, pr.Author)
	switch {
	case err == nil && u.Service:
		owners = append(owners, u.Owner)
	case err != nil && !fault.Is(err, fault.NotFound):
		return err
	}
	if p.User != "" && slices.Contains(owners, p.User) {
		return fault.New(fault.Forbidden, "%s owns the service account %s that proposed this: the owner of an author cannot review its proposals", p.User, pr.Author)
	}
	return nil
}

// counted returns the approvals of pr that count toward its quorum now,
// read inside the applying transaction: an approval counts only while its
// reviewer is an enabled person who still holds the change's grant (by
// their roles, within the voting key's scope), through a key not revoked
// since. self is the approval being
// cast, checked by authentication a moment ago. Those that no longer
// count are returned as dropped (they stay on the proposal, on record).
func (s *Service) counted(ctx context.Context, tx audit.Tx, pr *Proposal, self string) (counted, dropped []string, err error) {
	ids, ok := tx.(identity.Reader)
	if !ok {
		return nil, nil, fault.New(fault.Internal, "change: store transaction lacks the directory")
	}
	act, res := need(pr.Change)
	for _, v := range pr.Votes {
		if !v.Approve || slices.Contains(counted, v.Reviewer) {
			continue
		}
		stands := v.Reviewer == self
		if !stands {
			if stands, err = voteStands(ctx, ids, v, act, res, s.cfg.Now()); err != nil {
				return nil, nil, err
			}
		}
		if stands {
			counted = append(counted, v.Reviewer)
		} else {
			dropped = append(dropped, v.Reviewer)
		}
	}
	return counted, dropped, nil
}

// authorStands refuses approving a proposal whose author has been
// disabled since they made it (a departed or compromised account).
func authorStands(ctx context.Context, tx audit.Tx, pr *Proposal) error {
	ids, ok := tx.(identity.Reader)
	if !ok {
		return fault.New(fault.Internal, "change: store transaction lacks the directory")
	}
	a, err := ids.UserByName(ctx, pr.Author)
	switch {
	case err == nil && a.Disabled:
		return fault.New(fault.Conflict, "the author of proposal %s, %s, is disabled: it cannot be approved (reject it)", pr.ID, pr.Author)
	case err != nil && !fault.Is(err, fault.NotFound):
		return err
	}
	return nil
}

// voteStands reports whether v's reviewer could cast it now.
func voteStands(ctx context.Context, ids identity.Reader, v Vote, act authz.Action, res string, now time.Time) (bool, error) {
	u, err := ids.UserByName(ctx, v.Reviewer)
	if fault.Is(err, fault.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if u.Disabled || u.Service {
		return false, nil
	}
	perms := authz.Permissions{}
	for _, name := range u.Roles {
		role, err := ids.RoleByName(ctx, name)
		if fault.Is(err, fault.NotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		perms.Roles = append(perms.Roles, role.Grants...)
	}
	if _, _, isToken := authn.ParseTokenKeyID(v.KeyID); isToken {
		// A token's grants also come from its groups at sign-in, which
		// are not stored: the person must still be enabled (above).
		return true, nil
	}
	k, err := ids.KeyByID(ctx, v.KeyID)
	if fault.Is(err, fault.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !k.RevokedAt.IsZero() && !k.RevokedAt.After(now) {
		return false, nil
	}
	perms.Scope = k.Scope
	return perms.Allows(act, res), nil
}
