// Package killswitch stops use of a tool, an upstream, a user, a key or
// everything, at once: on the very next request, including calls already
// in flight, with who and why on record. The active set lives in memory
// for the hot path and is reloaded from the store on every change.
package killswitch

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Kind is what a switch covers.
type Kind string

const (
	Tool     Kind = "tool"
	Upstream Kind = "upstream"
	User     Kind = "user"
	Key      Kind = "key"
	All      Kind = "all"
)

// Switch is one kill switch.
type Switch struct {
	ID            string    `json:"id"`
	Kind          Kind      `json:"kind"`
	Target        string    `json:"target"`
	Reason        string    `json:"reason"`
	EngagedBy     string    `json:"engaged_by"`
	EngagedAt     time.Time `json:"engaged_at"`
	ReleasedBy    string    `json:"released_by,omitempty"`
	ReleasedAt    time.Time `json:"released_at,omitzero"`
	ReleaseReason string    `json:"release_reason,omitempty"`
}

// Active reports whether the switch is engaged.
func (s Switch) Active() bool { return s.ReleasedAt.IsZero() }

// Audit event types.
const (
	EventEngage  = "killswitch-engage"
	EventRelease = "killswitch-release"
	EventList    = "killswitch-list"
)

// Store is the read side.
type Store interface {
	ListKillSwitches(ctx context.Context) ([]Switch, error)
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	InsertKillSwitch(ctx context.Context, s Switch) error
	ReleaseKillSwitch(ctx context.Context, id, by, reason string, at time.Time) error
}

// Subject is what one request touches; a switch covering any part of it
// stops the request.
type Subject struct {
	User, KeyID, Upstream, Tool string
}

// Cutter cancels calls in flight that a new switch covers.
type Cutter interface {
	Cut(covers func(Subject) bool) int
}

// Service engages, releases and checks kill switches.
type Service struct {
	store  Store
	audit  audit.Appender
	now    func() time.Time
	active atomic.Pointer[[]Switch]

	mu     sync.Mutex
	cutter Cutter
}

// New returns a Service with the active switches loaded.
func New(ctx context.Context, store Store, a audit.Appender, now func() time.Time) (*Service, error) {
	if store == nil || a == nil || now == nil {
		return nil, errors.New("killswitch: missing dependency")
	}
	s := &Service{store: store, audit: a, now: now}
	return s, s.reload(ctx)
}

// SetCutter installs what cuts calls in flight (the gateway).
func (s *Service) SetCutter(c Cutter) {
	s.mu.Lock()
	s.cutter = c
	s.mu.Unlock()
}

func (s *Service) reload(ctx context.Context) error {
	all, err := s.store.ListKillSwitches(ctx)
	if err != nil {
		return err
	}
	var active []Switch
	for _, sw := range all {
		if sw.Active() {
			active = append(active, sw)
		}
	}
	s.active.Store(&active)
	return nil
}

// covers reports whether sw stops requests touching sub.
func covers(sw Switch, sub Subject) bool {
	switch sw.Kind {
	case All:
		return true
	case User:
		return sub.User == sw.Target
	case Key:
		return sub.KeyID == sw.Target
	case Upstream:
		return sub.Upstream != "" && sub.Upstream == sw.Target
	case Tool:
		return sub.Tool != "" && authz.Match(sw.Target, sub.Tool)
	}
	return false
}

// Active is how many switches are engaged and not released.
func (s *Service) Active() int { return len(*s.active.Load()) }

// Blocking returns the first active switch covering sub. No store access.
func (s *Service) Blocking(sub Subject) (Switch, bool) {
	for _, sw := range *s.active.Load() {
		if covers(sw, sub) {
			return sw, true
		}
	}
	return Switch{}, false
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Engage engages a switch on kind/target. A tool switch needs
// operate-killswitch on that tool (its target may be a glob); every other
// kind needs operate-killswitch:*. A reason is mandatory.
func (s *Service) Engage(ctx context.Context, p *authn.Principal, kind Kind, target, reason string) (Switch, error) {
	var b [8]byte
	rand.Read(b[:])
	sw := Switch{ID: "ks-" + idEncoding.EncodeToString(b[:]), Kind: kind, Target: target, Reason: strings.TrimSpace(reason),
		EngagedBy: p.User, EngagedAt: s.now().UTC()}
	if kind == All {
		sw.Target = "*"
	}
	rec := p.Record(EventEngage, "killswitch:"+sw.ID)
	rec.Detail = map[string]any{"kind": string(kind), "target": sw.Target, "reason": sw.Reason}
	if err := validate(sw); err != nil {
		return sw, audit.Refuse(ctx, s.audit, rec, err)
	}
	resource := authz.All
	if kind == Tool {
		resource = sw.Target
	}
	if !p.Perms.Covers(authz.Grant{Action: authz.OperateKillswitch, Resource: resource}) { // a target may be a glob: covered, not matched
		return sw, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs operate-killswitch:%s", resource))
	}
	if _, err := s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("killswitch: store transaction %T lacks kill switch operations", tx)
		}
		return ts.InsertKillSwitch(ctx, sw)
	}}); err != nil {
		return sw, err
	}
	if err := s.reload(ctx); err != nil {
		return sw, err
	}
	s.mu.Lock()
	cutter := s.cutter
	s.mu.Unlock()
	if cutter != nil {
		cutter.Cut(func(sub Subject) bool { return covers(sw, sub) })
	}
	return sw, nil
}

func validate(sw Switch) error {
	switch sw.Kind {
	case Tool, Upstream, User, Key:
		if sw.Target == "" || len(sw.Target) > 200 || strings.ContainsAny(sw.Target, " \t\r\n\x00") {
			return fault.New(fault.Invalid, "a %s kill switch needs a target", sw.Kind)
		}
	case All:
	default:
		return fault.New(fault.Invalid, "kind must be tool, upstream, user, key or all")
	}
	if sw.Reason == "" {
		return fault.New(fault.Invalid, "a reason is required")
	}
	if len(sw.Reason) > 1000 {
		return fault.New(fault.Invalid, "the reason is longer than 1000 characters")
	}
	return nil
}

// Release releases an engaged switch; a reason is mandatory.
func (s *Service) Release(ctx context.Context, p *authn.Principal, id, reason string) (Switch, error) {
	reason = strings.TrimSpace(reason)
	rec := p.Record(EventRelease, "killswitch:"+id)
	rec.Detail = map[string]any{"reason": reason}
	var sw Switch
	for _, a := range *s.active.Load() {
		if a.ID == id {
			sw = a
		}
	}
	switch {
	case reason == "":
		return sw, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "a reason is required"))
	case sw.ID == "":
		return sw, audit.Refuse(ctx, s.audit, rec, fault.New(fault.NotFound, "no engaged kill switch %q", id))
	}
	resource := authz.All
	if sw.Kind == Tool {
		resource = sw.Target
	}
	if !p.Perms.Covers(authz.Grant{Action: authz.OperateKillswitch, Resource: resource}) { // a target may be a glob: covered, not matched
		return sw, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs operate-killswitch:%s", resource))
	}
	now := s.now().UTC()
	if _, err := s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("killswitch: store transaction %T lacks kill switch operations", tx)
		}
		return ts.ReleaseKillSwitch(ctx, id, p.User, reason, now)
	}}); err != nil {
		return sw, err
	}
	sw.ReleasedBy, sw.ReleasedAt, sw.ReleaseReason = p.User, now, reason
	return sw, s.reload(ctx)
}

// List returns every switch, engaged and released (operate-killswitch or
// read-audit).
func (s *Service) List(ctx context.Context, p *authn.Principal) ([]Switch, error) {
	rec := p.Record(EventList, "")
	if !p.Allows(authz.OperateKillswitch, authz.All) && !p.Allows(authz.ReadAudit, authz.All) {
		return nil, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs operate-killswitch:* or read-audit:*"))
	}
	return audit.Read(ctx, s.audit, rec, func() ([]Switch, error) { return s.store.ListKillSwitches(ctx) })
}
