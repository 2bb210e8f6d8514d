package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Auditor appends records; an Entry's Apply runs in the record's transaction.
type Auditor = audit.Appender

// Invalidator drops cached credentials.
type Invalidator interface{ Invalidate() }

// AccessLoss is told, inside the transaction of the change (r is its
// record, which it may add detail to), that a user is being disabled or
// that their grants go from before to after: the vault marks the secrets
// they could reach for rotation. An error undoes the change.
type AccessLoss interface {
	AccessLost(ctx context.Context, tx audit.Tx, user string, disabled bool, before, after authz.Grants, r *audit.Record) error
}

// Service performs identity operations on behalf of a principal.
type Service struct {
	store  Reader
	audit  Auditor
	cache  Invalidator
	hasher *authn.Hasher
	now    func() time.Time
	loss   AccessLoss // nil: nobody is told
}

// SetAccessLoss installs what is told of users who lose access.
func (s *Service) SetAccessLoss(l AccessLoss) { s.loss = l }

// NewService returns a Service; every dependency is required.
func NewService(store Reader, auditor Auditor, cache Invalidator, hasher *authn.Hasher, now func() time.Time) (*Service, error) {
	if store == nil || auditor == nil || cache == nil || hasher == nil || now == nil {
		return nil, errors.New("identity: service needs a store, an auditor, a cache, a hasher and a clock")
	}
	return &Service{store: store, audit: auditor, cache: cache, hasher: hasher, now: now}, nil
}

// guard checks that p holds action on the whole system, recording a denial.
func (s *Service) guard(ctx context.Context, p *authn.Principal, rec audit.Record, need authz.Action) error {
	if p.Allows(need, authz.All) {
		return nil
	}
	return audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the %s grant", need))
}

// mutate authorizes, then runs apply in the transaction of rec and drops
// cached credentials before returning.
func (s *Service) mutate(ctx context.Context, p *authn.Principal, rec audit.Record, apply func(context.Context, TxStore, *audit.Record) error) error {
	if err := s.guard(ctx, p, rec, authz.ManageIdentities); err != nil {
		return err
	}
	_, err := s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		return apply(ctx, ts, r)
	}})
	s.cache.Invalidate()
	return err
}

// read authorizes a read, performs it, and records it before returning.
func read[T any](ctx context.Context, s *Service, p *authn.Principal, rec audit.Record, need authz.Action, fetch func() (T, error)) (T, error) {
	if err := s.guard(ctx, p, rec, need); err != nil {
		var zero T
		return zero, err
	}
	return audit.Read(ctx, s.audit, rec, fetch)
}

// grantsOf returns the union of the grants of the named roles.
func grantsOf(ctx context.Context, r Reader, roles []string) (authz.Grants, error) {
	var gs authz.Grants
	for _, name := range roles {
		role, err := r.RoleByName(ctx, name)
		if err != nil {
			if fault.Is(err, fault.NotFound) {
				return nil, fault.New(fault.NotFound, "role %q does not exist", name)
			}
			return nil, err
		}
		gs = append(gs, role.Grants...)
	}
	return gs, nil
}

// mayHandOut refuses grants the principal does not itself hold: nobody can
// create or assign more power than they have.
func mayHandOut(p *authn.Principal, gs authz.Grants, what string) error {
	if g, ok := p.Perms.CoversAll(gs); !ok {
		return fault.New(fault.Forbidden, "permission denied: %s would carry %s, which you do not hold", what, g)
	}
	return nil
}

// keepAnAdmin refuses a change that would leave no usable admin key.
func (s *Service) keepAnAdmin(ctx context.Context, tx TxStore) error {
	n, err := tx.CountAdminKeys(ctx, s.now())
	if err != nil {
		return err
	}
	if n == 0 {
		return fault.New(fault.Conflict, "refused: this would leave no enabled user with a usable admin key; create another admin key first")
	}
	return nil
}

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

func target(kind, name string) string { return fmt.Sprintf("%s:%s", kind, name) }
