package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Audit event types.
const (
	EventSet      = "policy-set"
	EventRead     = "policy-read"
	EventExplain  = "policy-explain"
	EventRollback = "policy-rolled-back" // an earlier version's document put back in force as a new version
)

// Version is one stored policy.
type Version struct {
	Version     int       `json:"version"`
	Digest      string    `json:"digest"`
	Description string    `json:"description"`
	Rules       int       `json:"rules"`
	Tests       int       `json:"tests"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	Source      string    `json:"source,omitempty"`
}

// Store is the read side.
type Store interface {
	// Policies lists every version, newest first, without sources.
	Policies(ctx context.Context) ([]Version, error)
	// Policy returns one version with its source (0: the newest), or an
	// error of kind fault.NotFound.
	Policy(ctx context.Context, version int) (Version, error)
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	InsertPolicy(ctx context.Context, v Version) error // fault.Conflict if the version exists
}

// Service keeps the policy in force, compiled, and changes it.
type Service struct {
	store Store
	audit audit.Appender
	now   func() time.Time
	cur   atomic.Pointer[Policy]

	problem string // why the stored policy did not compile at start; "" if it did
}

// NewService loads the newest policy, storing the default one first (as
// version 1, on record) if there is none.
func NewService(ctx context.Context, store Store, a audit.Appender, now func() time.Time) (*Service, error) {
	if store == nil || a == nil || now == nil {
		return nil, errors.New("policy: missing dependency")
	}
	s := &Service{store: store, audit: a, now: now}
	v, err := store.Policy(ctx, 0)
	if fault.Is(err, fault.NotFound) {
		v, err = s.store1(ctx, audit.Record{Event: EventSet, Outcome: audit.Success, Actor: "system", Target: "policy"}, DefaultSource(), "system")
	}
	if err != nil {
		return nil, err
	}
	p, err := Parse([]byte(v.Source))
	if err != nil {
		// Typed variables (vars.go) refuse conditions that earlier versions
		// accepted and then failed on every call. Such a policy is not put
		// in force, nor is an older one (it may allow more): every call is
		// denied, and the admin API stays up to set or roll back a policy.
		s.problem = fmt.Sprintf("the stored policy version %d does not compile with this ostiary, so every tools/call is denied "+
			"until 'ostiary policy set' or 'ostiary policy rollback' puts one that does in force: %v", v.Version, err)
		if p, err = Parse([]byte(unavailableSource)); err != nil {
			return nil, err
		}
	}
	p.Version, p.Digest = v.Version, v.Digest
	s.cur.Store(p)
	return s, nil
}

// unavailableSource is in force when the stored policy does not compile.
const unavailableSource = `version: 1
description: the stored policy does not compile; every call is denied
rules:
  - id: policy-does-not-compile
    when: "true"
    decision: deny
    message: The policy in force does not compile with this version of Ostiary; an administrator must set one that does.
`

// Problem says why the stored policy could not be put in force at start
// (every call is denied meanwhile), or is empty.
func (s *Service) Problem() string { return s.problem }

// Current is the policy in force.
func (s *Service) Current() *Policy { return s.cur.Load() }

func digest(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

// store1 stores src as the next version in rec's transaction.
func (s *Service) store1(ctx context.Context, rec audit.Record, src []byte, by string) (Version, error) {
	p, err := Parse(src)
	if err != nil {
		return Version{}, err
	}
	v := Version{Digest: digest(src), Description: p.Doc.Description, Rules: len(p.Doc.Rules), Tests: len(p.Doc.Tests),
		CreatedAt: s.now().UTC(), CreatedBy: by, Source: string(src)}
	if rec.Detail == nil {
		rec.Detail = map[string]any{}
	}
	rec.Detail["digest"], rec.Detail["rules"], rec.Detail["tests"] = v.Digest, v.Rules, v.Tests
	_, err = s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("policy: store transaction %T lacks policy operations", tx)
		}
		prev, err := ts.Policy(ctx, 0)
		switch {
		case err == nil:
			v.Version = prev.Version + 1
			r.Detail["previous_version"] = prev.Version
		case fault.Is(err, fault.NotFound):
			v.Version = 1
		default:
			return err
		}
		r.Detail["version"] = v.Version
		return ts.InsertPolicy(ctx, v)
	}})
	return v, err
}

// Set puts a new policy in force (manage-policy:*). It must compile and
// pass its own tests; otherwise nothing changes and the results say why.
func (s *Service) Set(ctx context.Context, p *authn.Principal, src []byte) (Version, []TestResult, error) {
	rec := p.Record(EventSet, "policy")
	if !p.Allows(authz.ManagePolicy, authz.All) {
		return Version{}, nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-policy grant"))
	}
	return s.put(ctx, p, rec, src, "")
}

// put compiles src and runs its tests, and if it passes stores it as the
// next version in rec's transaction and puts it in force. A refusal is on
// record (prefixed with what, if given).
func (s *Service) put(ctx context.Context, p *authn.Principal, rec audit.Record, src []byte, what string) (Version, []TestResult, error) {
	pol, err := Parse(src)
	if err != nil {
		return Version{}, nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s%s", what, err))
	}
	results, err := pol.RunTests()
	if err != nil {
		return Version{}, nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%s%s", what, err))
	}
	var failed []string
	for _, r := range results {
		if !r.Passed {
			failed = append(failed, fmt.Sprintf("%s (%s)", r.Name, strings.Join(r.Problems, "; ")))
		}
	}
	if len(failed) > 0 {
		if rec.Detail == nil {
			rec.Detail = map[string]any{}
		}
		rec.Detail["failed_tests"] = len(failed)
		return Version{}, results, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid,
			"%sthe policy fails %d of its %d tests, so it was not set: %s", what, len(failed), len(results), clipText(strings.Join(failed, "; "), 2000)))
	}
	v, err := s.store1(ctx, rec, src, p.User)
	if err != nil {
		return Version{}, results, err
	}
	pol.Version, pol.Digest = v.Version, v.Digest
	for { // two sets racing: the higher version stays in force, as in the store
		cur := s.cur.Load()
		if cur.Version >= pol.Version || s.cur.CompareAndSwap(cur, pol) {
			break
		}
	}
	v.Source = ""
	return v, results, nil
}

func mayRead(p *authn.Principal) bool {
	return p.Allows(authz.ManagePolicy, authz.All) || p.Allows(authz.ReadAudit, authz.All)
}

// History lists every policy version (manage-policy:* or read-audit:*).
func (s *Service) History(ctx context.Context, p *authn.Principal) ([]Version, error) {
	return s.read(ctx, p, "history", func() ([]Version, error) { return s.store.Policies(ctx) })
}

// Show returns one version with its source (0: the one in force).
func (s *Service) Show(ctx context.Context, p *authn.Principal, version int) (Version, error) {
	vs, err := s.read(ctx, p, fmt.Sprint(version), func() ([]Version, error) {
		if version < 0 {
			return nil, fault.New(fault.Invalid, "a policy version is a positive number")
		}
		v, err := s.store.Policy(ctx, version)
		return []Version{v}, err
	})
	if err != nil {
		return Version{}, err
	}
	return vs[0], nil
}

func (s *Service) read(ctx context.Context, p *authn.Principal, what string, get func() ([]Version, error)) ([]Version, error) {
	rec := p.Record(EventRead, "policy")
	rec.Detail = map[string]any{"what": what}
	if !mayRead(p) {
		return nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-policy or read-audit grant"))
	}
	return audit.Read(ctx, s.audit, rec, get)
}

// MayExplain reports whether p may see decisions explained.
func MayExplain(p *authn.Principal) bool { return mayRead(p) }

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
