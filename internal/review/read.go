package review

import (
	"context"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/fault"
)

// List returns the campaigns the caller may see: all with read-audit,
// else those they review.
func (s *Service) List(ctx context.Context, p *authn.Principal) ([]Campaign, error) {
	return audit.Read(ctx, s.cfg.Auditor, p.Record(EventList, ""), func() ([]Campaign, error) {
		all, err := s.cfg.Store.Reviews(ctx)
		if err != nil {
			return nil, err
		}
		out := []Campaign{}
		for _, c := range all {
			if canRead(p) || c.isReviewer(p.User) {
				out = append(out, c)
			}
		}
		return out, nil
	})
}

// Show returns a campaign with its items, to read-audit holders and its
// reviewers.
func (s *Service) Show(ctx context.Context, p *authn.Principal, id string) (Campaign, error) {
	target := "review:?"
	if ValidID(id) {
		target = "review:" + id
	}
	rec := p.Record(EventShow, target)
	if target == "review:?" {
		return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "%q is not a review id (rv_ and 20 hex digits)", clip(id))
	}
	return audit.Read(ctx, s.cfg.Auditor, rec, func() (Campaign, error) {
		c, err := s.cfg.Store.ReviewByID(ctx, id)
		if err != nil {
			return Campaign{}, err
		}
		if !canRead(p) && !c.isReviewer(p.User) {
			return Campaign{}, fault.New(fault.NotFound, "review %s does not exist", id)
		}
		if c.Items, err = s.cfg.Store.ReviewItems(ctx, id); err != nil {
			return Campaign{}, err
		}
		return c, nil
	})
}

// Campaigns returns every campaign with its items, for evidence.
func (s *Service) Campaigns(ctx context.Context) ([]Campaign, error) {
	all, err := s.cfg.Store.Reviews(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Items, err = s.cfg.Store.ReviewItems(ctx, all[i].ID); err != nil {
			return nil, err
		}
	}
	return all, nil
}
