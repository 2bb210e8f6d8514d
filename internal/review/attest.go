package review

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// AttestRequest is a reviewer's verdict on an item: keep everything, or
// revoke the grants listed (role:R, key:K).
type AttestRequest struct {
	Keep   bool     `json:"keep"`
	Revoke []string `json:"revoke"`
	Reason string   `json:"reason"`
}

// MaxReason bounds an attestation's reason.
const MaxReason = 500

// Attest records a reviewer's verdict on a pending item. Revocations are
// applied first, through identity (each with its own record, in this
// request; the identity's cached credentials are dropped, so its next
// call is judged without them); the attestation is recorded once they all
// took effect. A reviewer may not attest their own item, nor that of a
// service account they own.
func (s *Service) Attest(ctx context.Context, p *authn.Principal, id string, in AttestRequest) (Item, error) {
	target := "review-item:?"
	if ValidID(id) && strings.HasPrefix(id, "ri_") {
		target = "review-item:" + id
	}
	rec := p.Record(EventAttest, target)
	in.Reason = strings.TrimSpace(in.Reason)
	in.Revoke = slices.Compact(slices.Sorted(slices.Values(in.Revoke)))
	rec.Detail = map[string]any{"keep": in.Keep, "revoke": in.Revoke, "reason": clip(in.Reason)}
	switch {
	case target == "review-item:?":
		rec.Detail["revoke"], rec.Detail["reason"] = []string{}, ""
		return Item{}, invalid(ctx, s.cfg.Auditor, rec, "%q is not a review item id (ri_ and 20 hex digits)", clip(id))
	case in.Keep == (len(in.Revoke) > 0):
		return Item{}, invalid(ctx, s.cfg.Auditor, rec, "want either keep or the grants to revoke")
	case in.Reason == "" || len(in.Reason) > MaxReason:
		return Item{}, invalid(ctx, s.cfg.Auditor, rec, "reason: 1 to %d characters, required", MaxReason)
	}
	it, err := s.cfg.Store.ReviewItem(ctx, id)
	if err != nil {
		return Item{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	c, err := s.cfg.Store.ReviewByID(ctx, it.Review)
	if err != nil {
		return Item{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	rec.Detail["review"], rec.Detail["identity"] = c.ID, it.Identity
	switch {
	case p.User == it.Identity || (it.Facts.Owner != "" && p.User == it.Facts.Owner):
		return Item{}, deny(ctx, s.cfg.Auditor, rec, "nobody reviews themselves: %s is yours", it.Identity)
	case !c.isReviewer(p.User):
		return Item{}, deny(ctx, s.cfg.Auditor, rec, "permission denied: you are not a reviewer of %s", c.ID)
	case it.Status != Pending:
		return Item{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Conflict, "item %s is already attested", id))
	}
	roles, keys, err := s.current(ctx, it.Identity, in.Revoke)
	if err != nil {
		return Item{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	if err := s.revoke(ctx, p, it.Identity, roles, keys, in.Revoke); err != nil {
		return Item{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	it.Status, it.Reason, it.AttestedBy, it.AttestedAt, it.Revoked = Attested, in.Reason, p.User, s.cfg.Now().UTC(), in.Revoke
	it.Decision = Keep
	if len(in.Revoke) > 0 {
		it.Decision = Revoke
	}
	if _, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		return ts.AttestItem(ctx, it)
	}}); err != nil {
		return Item{}, err
	}
	return it, nil
}

// current checks every grant to revoke against what the identity holds
// now, returning its roles and the keys to revoke.
func (s *Service) current(ctx context.Context, user string, revoke []string) (roles, keys []string, err error) {
	u, err := s.cfg.Directory.UserByName(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	ks, err := s.cfg.Directory.ListKeys(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	for _, g := range revoke {
		kind, name, _ := strings.Cut(g, ":")
		switch {
		case kind == "role" && slices.Contains(u.Roles, name):
		case kind == "key" && slices.ContainsFunc(ks, func(k identity.Key) bool { return k.ID == name && k.RevokedAt.IsZero() }):
			keys = append(keys, name)
		default:
			return nil, nil, fault.New(fault.Invalid, "%q is not a grant %s holds (role:ROLE or key:KEYID)", clip(g), user)
		}
	}
	return u.Roles, keys, nil
}

// revoke takes the roles and keys away, as p, through identity.
func (s *Service) revoke(ctx context.Context, p *authn.Principal, user string, roles, keys, revoke []string) error {
	keep := slices.DeleteFunc(slices.Clone(roles), func(r string) bool { return slices.Contains(revoke, "role:"+r) })
	if len(keep) != len(roles) {
		if _, err := s.cfg.Identities.SetRoles(ctx, p, user, keep); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if _, err := s.cfg.Identities.RevokeKey(ctx, p, k); err != nil {
			return err
		}
	}
	return nil
}

// Overdue records every pending item past its campaign's due time as
// overdue, once, and raises an alert for it.
func (s *Service) Overdue(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	items, err := s.cfg.Store.OverdueItems(ctx, now)
	if err != nil {
		return err
	}
	for _, it := range items {
		c, err := s.cfg.Store.ReviewByID(ctx, it.Review)
		if err != nil {
			return err
		}
		rec := audit.Record{Time: now, Event: EventOverdue, Outcome: audit.Success, Actor: "system", Target: "review-item:" + it.ID,
			Detail: map[string]any{"review": c.ID, "name": c.Name, "identity": it.Identity, "due_at": audit.FormatTime(c.DueAt), "reviewers": c.Reviewers}}
		if _, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			ts, err := txStore(tx)
			if err != nil {
				return err
			}
			return ts.MarkItemOverdue(ctx, it.ID, now)
		}}); err != nil {
			return err
		}
		if s.cfg.Alerter != nil {
			if _, err := s.cfg.Alerter.Raise(ctx, alert.Finding{Rule: "access-review", Kind: alert.KindReviewOverdue, Subject: "review-item:" + it.ID,
				Summary: fmt.Sprintf("access review %q (%s): %s not attested by %s (reviewers %s)", c.Name, c.ID, it.Identity,
					c.DueAt.Format("2006-01-02 15:04 MST"), strings.Join(c.Reviewers, ", ")),
				Facts: map[string]any{"review": c.ID, "item": it.ID, "identity": it.Identity}, At: now}); err != nil {
				return err
			}
		}
	}
	return nil
}
