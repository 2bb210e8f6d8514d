package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/review"
)

var (
	_ review.Store   = (*Store)(nil)
	_ review.TxStore = (*Tx)(nil)
)

func (s queries) reviews(ctx context.Context, where string, args ...any) ([]review.Campaign, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT r.id, r.name, r.scope, r.reviewers, r.created_by, r.created_at, r.due_at,
		(SELECT count(*) FROM review_items i WHERE i.review_id = r.id AND i.status = 'pending') FROM reviews r `+where+` ORDER BY r.created_at DESC, r.id`, args...)
	if err != nil {
		return nil, classify("list reviews", err)
	}
	defer rows.Close()
	var out []review.Campaign
	for rows.Next() {
		var c review.Campaign
		var reviewers string
		var created, due int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Scope, &reviewers, &c.CreatedBy, &created, &due, &c.Pending); err != nil {
			return nil, classify("list reviews", err)
		}
		if err := json.Unmarshal([]byte(reviewers), &c.Reviewers); err != nil {
			return nil, fault.Wrap(fault.Internal, "review reviewers", err)
		}
		c.CreatedAt, c.DueAt = time.UnixMicro(created).UTC(), time.UnixMicro(due).UTC()
		out = append(out, c)
	}
	return out, classify("list reviews", rows.Err())
}

func (s queries) Reviews(ctx context.Context) ([]review.Campaign, error) { return s.reviews(ctx, "") }

func (s queries) ReviewByID(ctx context.Context, id string) (review.Campaign, error) {
	cs, err := s.reviews(ctx, "WHERE r.id = ?", id)
	if err != nil {
		return review.Campaign{}, err
	}
	if len(cs) == 0 {
		return review.Campaign{}, fault.New(fault.NotFound, "review %s does not exist", id)
	}
	return cs[0], nil
}

func (s queries) items(ctx context.Context, where string, args ...any) ([]review.Item, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT id, review_id, identity, facts, status, decision, revoked, reason, attested_by, attested_at, overdue_at
		FROM review_items `+where, args...)
	if err != nil {
		return nil, classify("list review items", err)
	}
	defer rows.Close()
	var out []review.Item
	for rows.Next() {
		var it review.Item
		var facts, revoked string
		var attested, overdue sql.NullInt64
		if err := rows.Scan(&it.ID, &it.Review, &it.Identity, &facts, &it.Status, &it.Decision, &revoked, &it.Reason, &it.AttestedBy, &attested, &overdue); err != nil {
			return nil, classify("list review items", err)
		}
		if err := json.Unmarshal([]byte(facts), &it.Facts); err != nil {
			return nil, fault.Wrap(fault.Internal, "review item facts", err)
		}
		if err := json.Unmarshal([]byte(revoked), &it.Revoked); err != nil {
			return nil, fault.Wrap(fault.Internal, "review item revoked", err)
		}
		it.AttestedAt, it.OverdueAt = fromMicros(attested), fromMicros(overdue)
		out = append(out, it)
	}
	return out, classify("list review items", rows.Err())
}

func (s queries) ReviewItems(ctx context.Context, id string) ([]review.Item, error) {
	return s.items(ctx, "WHERE review_id = ? ORDER BY identity", id)
}

func (s queries) ReviewItem(ctx context.Context, id string) (review.Item, error) {
	its, err := s.items(ctx, "WHERE id = ?", id)
	if err != nil {
		return review.Item{}, err
	}
	if len(its) == 0 {
		return review.Item{}, fault.New(fault.NotFound, "review item %s does not exist", id)
	}
	return its[0], nil
}

func (s queries) OverdueItems(ctx context.Context, now time.Time) ([]review.Item, error) {
	return s.items(ctx, `WHERE status = 'pending' AND overdue_at IS NULL AND review_id IN (SELECT id FROM reviews WHERE due_at <= ?)
		ORDER BY review_id, identity LIMIT 500`, now.UnixMicro())
}

func (t *Tx) InsertReview(ctx context.Context, c review.Campaign, items []review.Item) error {
	reviewers, err := json.Marshal(c.Reviewers)
	if err != nil {
		return fault.Wrap(fault.Internal, "review reviewers", err)
	}
	if _, err := t.tx.ExecContext(ctx, "INSERT INTO reviews (id, name, scope, reviewers, created_by, created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.Name, c.Scope, string(reviewers), c.CreatedBy, c.CreatedAt.UnixMicro(), c.DueAt.UnixMicro()); err != nil {
		return classify("insert review", err)
	}
	for _, it := range items {
		facts, err := json.Marshal(it.Facts)
		if err != nil {
			return fault.Wrap(fault.Internal, "review item facts", err)
		}
		if _, err := t.tx.ExecContext(ctx, "INSERT INTO review_items (id, review_id, identity, facts, status) VALUES (?, ?, ?, ?, 'pending')",
			it.ID, c.ID, it.Identity, string(facts)); err != nil {
			return classify("insert review item", err)
		}
	}
	return nil
}

func (t *Tx) AttestItem(ctx context.Context, it review.Item) error {
	revoked, err := json.Marshal(it.Revoked)
	if err != nil {
		return fault.Wrap(fault.Internal, "review item revoked", err)
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE review_items SET status = 'attested', decision = ?, revoked = ?, reason = ?, attested_by = ?, attested_at = ?
		WHERE id = ? AND status = 'pending'`, it.Decision, string(revoked), it.Reason, it.AttestedBy, it.AttestedAt.UnixMicro(), it.ID)
	if err != nil {
		return classify("attest review item", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fault.New(fault.Conflict, "item %s is already attested", it.ID)
	}
	return nil
}

func (t *Tx) MarkItemOverdue(ctx context.Context, id string, at time.Time) error {
	_, err := t.tx.ExecContext(ctx, "UPDATE review_items SET overdue_at = ? WHERE id = ? AND overdue_at IS NULL", at.UnixMicro(), id)
	return classify("mark review item overdue", err)
}
