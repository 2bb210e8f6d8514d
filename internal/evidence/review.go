package evidence

import (
	"context"
	"slices"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/review"
)

// KindAccessReview is an access review campaign's story.
const KindAccessReview = "access_review"

// Reviews reads access review campaigns with their items.
type Reviews interface {
	Campaigns(ctx context.Context) ([]review.Campaign, error)
}

// AccessReview is one campaign: who reviewed whom, what each identity
// could do and did (as of the start), each verdict, and every audit
// record involved — the start, each attestation with the revocations it
// applied (same request), each item found overdue — oldest first.
type AccessReview struct {
	Kind   string          `json:"kind"`
	Review review.Campaign `json:"review"`
	// Outcome: complete (every item attested) or open.
	Outcome string `json:"outcome"`
	Records []Ref  `json:"records"`
}

// AccessReviews returns the campaigns matching q (User: an identity
// reviewed or a reviewer; times bound the start), newest first.
func AccessReviews(ctx context.Context, a Auditor, rs Reviews, q Query) ([]AccessReview, error) {
	all, err := rs.Campaigns(ctx)
	if err != nil {
		return nil, err
	}
	out := []AccessReview{}
	for _, c := range all {
		if (!q.Since.IsZero() && c.CreatedAt.Before(q.Since)) || (!q.Until.IsZero() && !c.CreatedAt.Before(q.Until)) {
			continue
		}
		if q.User != "" && !involves(c, q.User) {
			continue
		}
		if q.Limit > 0 && len(out) >= q.Limit {
			break
		}
		ar := AccessReview{Kind: KindAccessReview, Review: c, Outcome: "complete", Records: []Ref{}}
		if c.Pending > 0 {
			ar.Outcome = "open"
		}
		var recs []audit.Record
		add := func(q audit.Query) error {
			q.Limit = audit.MaxLimit
			rs, err := a.QueryAudit(ctx, q)
			recs = append(recs, rs...)
			return err
		}
		if err := add(audit.Query{Target: "review:" + c.ID}); err != nil {
			return nil, err
		}
		for _, it := range c.Items {
			n := len(recs)
			if err := add(audit.Query{Target: "review-item:" + it.ID}); err != nil {
				return nil, err
			}
			for _, r := range slices.Clone(recs[n:]) {
				if r.Event == review.EventAttest && r.Outcome == audit.Success && r.RequestID != "" {
					if err := add(audit.Query{RequestID: r.RequestID}); err != nil {
						return nil, err
					}
				}
			}
		}
		slices.SortFunc(recs, func(x, y audit.Record) int { return cmpSeq(x.Seq, y.Seq) })
		recs = slices.CompactFunc(recs, func(x, y audit.Record) bool { return x.Seq == y.Seq })
		for _, r := range recs {
			ar.Records = append(ar.Records, ref(r))
		}
		out = append(out, ar)
	}
	return out, nil
}

// involves reports whether user reviews c or is reviewed in it.
func involves(c review.Campaign, user string) bool {
	return slices.Contains(c.Reviewers, user) || slices.ContainsFunc(c.Items, func(it review.Item) bool { return it.Identity == user })
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
