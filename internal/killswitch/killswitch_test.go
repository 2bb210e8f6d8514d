package killswitch

import (
	"context"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

type memStore struct{ all []Switch }

func (m *memStore) ListKillSwitches(context.Context) ([]Switch, error) { return m.all, nil }
func (m *memStore) InsertKillSwitch(_ context.Context, s Switch) error {
	m.all = append(m.all, s)
	return nil
}
func (m *memStore) ReleaseKillSwitch(_ context.Context, id, by, reason string, at time.Time) error {
	for i := range m.all {
		if m.all[i].ID == id {
			m.all[i].ReleasedBy, m.all[i].ReleasedAt, m.all[i].ReleaseReason = by, at, reason
		}
	}
	return nil
}

// memTx runs Apply against the store directly.
type memTx struct{ *memStore }

func (memTx) AppendRecord(context.Context, *audit.Record) error { return nil }
func (memTx) Step(_ context.Context, fn func() error) error     { return fn() }

type applyAuditor struct{ store *memStore }

func (a applyAuditor) Write(ctx context.Context, e audit.Entry) (audit.Record, error) {
	if e.Apply != nil {
		if err := e.Apply(ctx, memTx{a.store}, &e.Record); err != nil {
			return e.Record, err
		}
	}
	return e.Record, nil
}

func principal(grants ...string) *authn.Principal {
	gs, _ := authz.ParseGrants(grants)
	return &authn.Principal{User: "op", Perms: authz.Permissions{Roles: gs}}
}

func TestCoversAndGrants(t *testing.T) {
	st := &memStore{}
	s, err := New(context.Background(), st, applyAuditor{st}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A narrower grant cannot switch off a wider glob, even one it matches literally.
	if _, err := s.Engage(ctx, principal("operate-killswitch:fin.?"), Tool, "fin.*", "x"); !fault.Is(err, fault.Forbidden) {
		t.Errorf("fin.? engaging fin.*: %v", err)
	}
	if _, err := s.Engage(ctx, principal("operate-killswitch:fin.*"), Upstream, "fin", "x"); !fault.Is(err, fault.Forbidden) {
		t.Errorf("a tool grant engaging an upstream switch: %v", err)
	}
	sw, err := s.Engage(ctx, principal("operate-killswitch:fin.*"), Tool, "fin.pay*", "fraud")
	if err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[Subject]bool{
		{Tool: "fin.pay"}:         true,
		{Tool: "fin.payroll"}:     true,
		{Tool: "fin.lookup"}:      false,
		{Upstream: "fin"}:         false,
		{User: "alice", Tool: ""}: false,
	} {
		if _, got := s.Blocking(sub); got != want {
			t.Errorf("%+v blocked = %v", sub, got)
		}
	}
	if _, err := s.Release(ctx, principal("operate-killswitch:*"), sw.ID, ""); !fault.Is(err, fault.Invalid) {
		t.Errorf("release without a reason: %v", err)
	}
	if _, err := s.Release(ctx, principal("operate-killswitch:*"), sw.ID, "resolved"); err != nil {
		t.Fatal(err)
	}
	if _, blocked := s.Blocking(Subject{Tool: "fin.pay"}); blocked {
		t.Error("still blocked after release")
	}
	all, _ := s.Engage(ctx, principal("admin:*"), All, "", "everything is on fire")
	if _, blocked := s.Blocking(Subject{User: "anyone"}); !blocked || all.Target != "*" {
		t.Errorf("--all: %+v", all)
	}
}
