package policy

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// Check compiles src and runs its own tests, changing nothing: what a
// proposal's tests gate reports.
func Check(src []byte) (*Policy, []TestResult, error) {
	p, err := Parse(src)
	if err != nil {
		return nil, nil, fault.New(fault.Invalid, "%s", err)
	}
	results, err := p.RunTests()
	if err != nil {
		return nil, nil, fault.New(fault.Invalid, "%s", err)
	}
	return p, results, nil
}

// StaleError is fault.StaleError.
type StaleError = fault.StaleError

// Stale is fault.Stale.
func Stale(base, now string) error { return fault.Stale(base, now) }

// ApplyTx stores src as the next version inside tx (a reviewed change
// applied with its record r), provided the newest stored version is still
// base: otherwise a *StaleError. Install puts the result in force once the
// transaction committed.
func (s *Service) ApplyTx(ctx context.Context, tx audit.Tx, r *audit.Record, src []byte, by string, base int) (Version, error) {
	ts, ok := tx.(TxStore)
	if !ok {
		return Version{}, fmt.Errorf("policy: store transaction %T lacks policy operations", tx)
	}
	p, err := Parse(src)
	if err != nil {
		return Version{}, fault.New(fault.Invalid, "%s", err)
	}
	prev, err := ts.Policy(ctx, 0)
	if err != nil {
		return Version{}, err
	}
	if prev.Version != base {
		return Version{}, Stale(strconv.Itoa(base), strconv.Itoa(prev.Version))
	}
	v := Version{Version: prev.Version + 1, Digest: digest(src), Description: p.Doc.Description, Rules: len(p.Doc.Rules), Tests: len(p.Doc.Tests),
		CreatedAt: s.now().UTC(), CreatedBy: by, Source: string(src)}
	if r.Detail == nil {
		r.Detail = map[string]any{}
	}
	r.Detail["version"], r.Detail["previous_version"], r.Detail["digest"] = v.Version, prev.Version, v.Digest
	return v, ts.InsertPolicy(ctx, v)
}

// Install puts a version ApplyTx stored in force (after its transaction
// committed). A version older than the one in force is ignored.
func (s *Service) Install(v Version) error {
	pol, err := Parse([]byte(v.Source))
	if err != nil {
		return err
	}
	pol.Version, pol.Digest = v.Version, v.Digest
	for {
		cur := s.cur.Load()
		if cur.Version >= pol.Version || s.cur.CompareAndSwap(cur, pol) {
			return nil
		}
	}
}

// Stored reads a stored version (the replay needs each recorded
// decision's own policy).
func (s *Service) Stored(ctx context.Context, version int) (Version, error) {
	return s.store.Policy(ctx, version)
}
