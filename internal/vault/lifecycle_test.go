package vault_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/vault"
)

const day = 24 * time.Hour

func period(p vault.Period) *vault.Period { return &p }

func (f *fixture) records(t *testing.T, event string) []audit.Record {
	t.Helper()
	var out []audit.Record
	for _, r := range f.env.Records(t) {
		if r.Event == event {
			out = append(out, r)
		}
	}
	return out
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]vault.Period{"90d": vault.Period(90 * day), "2w": vault.Period(14 * day), "36h": vault.Period(36 * time.Hour),
		"none": 0, "0": 0, "3660d": vault.Period(3660 * day)} {
		if got, err := vault.ParsePeriod(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "90", "90s", "-1d", "0d", "30m", "3661d", "99999999999d", "1.5d", "90D", " 9 d"} {
		if p, err := vault.ParsePeriod(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, p)
		}
	}
	if s := vault.Period(90 * day).String(); s != "90d" {
		t.Errorf("90 days print as %s", s)
	}
}

// A schedule is kept by the versions that follow unless changed; a secret
// falls due when its version is older than its schedule, is alerted then
// and again every day (never twice in a day, across vaults on the same
// store) until a new version is set, which starts the count again.
func TestOverdueWithClock(t *testing.T) {
	f := newFixture(t)
	if _, err := f.vault.SetWith(ctx, admin, "fin", "", []byte(value), []string{"fin"}, vault.SetOptions{RotateEvery: period(vault.Period(90 * day))}); err != nil {
		t.Fatal(err)
	}
	f.set(t, "plain", "", "other-"+value, "fin")
	check := func(want int) {
		t.Helper()
		n, err := f.vault.CheckOverdue(ctx)
		if err != nil || n != want {
			t.Fatalf("at %s: %d alerts, %v; want %d", f.clock.Now().Format(time.DateOnly), n, err, want)
		}
	}
	list := func(overdue bool) []vault.Secret {
		t.Helper()
		l, err := f.vault.List(ctx, admin, overdue)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	created := f.clock.Now()
	check(0)
	l := list(false)
	if len(l) != 2 || l[0].Name != "fin" || l[0].RotateEvery != vault.Period(90*day) || !l[0].RotationDue.Equal(created.Add(90*day)) || l[0].Overdue ||
		!l[1].RotationDue.IsZero() {
		t.Fatalf("listed %+v", l)
	}
	f.clock.Advance(90*day - time.Second)
	check(0)
	if len(list(true)) != 0 {
		t.Error("overdue a second early")
	}
	f.clock.Advance(time.Second)
	check(1)
	if l := list(true); len(l) != 1 || l[0].Name != "fin" || !l[0].Overdue {
		t.Errorf("overdue list: %+v", l)
	}
	check(0) // not twice in a day
	f.clock.Advance(23 * time.Hour)
	check(0)
	other := f.open(t, f.master) // another vault (a restart) does not repeat it either
	if n, _ := other.CheckOverdue(ctx); n != 0 {
		t.Errorf("a restart alerted again within the day")
	}
	f.clock.Advance(time.Hour)
	check(1)
	f.clock.Advance(day)
	check(1)
	alerts := f.records(t, vault.EventOverdue)
	if len(alerts) != 3 || alerts[0].Target != "secret:fin" || alerts[0].Actor != "system" || alerts[0].Detail["cause"] != "schedule" ||
		alerts[0].Detail["due_at"] != created.Add(90*day).UTC().Format(time.RFC3339) || fmt.Sprint(alerts[2].Detail["overdue_hours"]) != "48" {
		t.Errorf("alerts: %+v", alerts)
	}
	// A rotation (same schedule, kept) ends the alerts and starts anew.
	rotated := f.set(t, "fin", "", "v2-"+value, "fin")
	if rotated.RotateEvery != vault.Period(90*day) {
		t.Errorf("the schedule was not kept: %+v", rotated)
	}
	f.clock.Advance(day)
	check(0)
	if len(list(true)) != 0 {
		t.Error("still overdue after rotation")
	}
	// Clearing the schedule: never due.
	if _, err := f.vault.SetWith(ctx, admin, "fin", "", []byte("v3-"+value), []string{"fin"}, vault.SetOptions{RotateEvery: period(0)}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(400 * day)
	check(0)
	if _, err := f.vault.SetWith(ctx, admin, "fin", "", []byte("v4-"+value), []string{"fin"}, vault.SetOptions{RotateEvery: period(vault.Period(time.Minute))}); !fault.Is(err, fault.Invalid) {
		t.Errorf("a one-minute schedule: %v", err)
	}
	f.noValue(t, value, "v2-"+value, "v3-"+value)
}

// The background job alerts on its own, with the injected clock.
func TestRunAlerts(t *testing.T) {
	f := newFixture(t)
	if _, err := f.vault.SetWith(ctx, admin, "fin", "", []byte(value), []string{"fin"}, vault.SetOptions{RotateEvery: period(vault.Period(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.vault.Run(runCtx, 5*time.Millisecond, func(err error) { t.Error(err) }) }()
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.records(t, vault.EventOverdue)) == 1 }, "no overdue alert")
	f.clock.Advance(day)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.records(t, vault.EventOverdue)) == 2 }, "no second alert a day later")
	cancel()
	<-done
}

type fakeKill struct {
	engaged  map[string]string // id → upstream
	released []string
	fail     bool
}

func (k *fakeKill) Engage(_ context.Context, p *authn.Principal, kind killswitch.Kind, target, reason string) (killswitch.Switch, error) {
	if k.fail {
		return killswitch.Switch{}, fault.New(fault.Unavailable, "kill switch store down")
	}
	id := fmt.Sprintf("ks-%d", len(k.engaged)+1)
	if kind != killswitch.Upstream || !strings.Contains(reason, "compromised") {
		return killswitch.Switch{}, fault.New(fault.Invalid, "unexpected %s %s", kind, reason)
	}
	k.engaged[id] = target
	return killswitch.Switch{ID: id, Kind: kind, Target: target}, nil
}

func (k *fakeKill) Release(_ context.Context, p *authn.Principal, id, reason string) (killswitch.Switch, error) {
	if !p.Allows(authz.OperateKillswitch, authz.All) {
		return killswitch.Switch{}, fault.New(fault.Forbidden, "no")
	}
	if _, ok := k.engaged[id]; !ok || slices.Contains(k.released, id) {
		return killswitch.Switch{}, fault.New(fault.NotFound, "no switch %s", id)
	}
	k.released = append(k.released, id)
	return killswitch.Switch{ID: id}, nil
}

// A compromised secret is due at once (alerted at the next check), with
// its kill switches engaged on every upstream it serves, until a new
// version is set, which releases them. Only a secrets manager declares a
// compromise, and only one who may operate kill switches engages them.
func TestCompromised(t *testing.T) {
	f := newFixture(t)
	kill := &fakeKill{engaged: map[string]string{}}
	f.vault.SetKiller(kill)
	f.set(t, "fin", "prod", value, "fin", "fin-b")
	f.set(t, "fin", "", "dev-"+value, "fin")

	secretsOnly := &authn.Principal{User: "sec", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ManageSecrets, Resource: authz.All}}}}
	reader := &authn.Principal{User: "eve", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}
	if _, err := f.vault.Compromised(ctx, reader, "fin", "prod", "leak", false); !fault.Is(err, fault.Forbidden) {
		t.Errorf("a reader declared a compromise: %v", err)
	}
	if _, err := f.vault.Compromised(ctx, secretsOnly, "fin", "prod", "leak", true); !fault.Is(err, fault.Forbidden) {
		t.Errorf("--kill without operate-killswitch: %v", err)
	}
	if _, err := f.vault.Compromised(ctx, admin, "fin", "prod", "  ", false); !fault.Is(err, fault.Invalid) {
		t.Errorf("no reason: %v", err)
	}
	if _, err := f.vault.Compromised(ctx, admin, "nope", "prod", "leak", true); !fault.Is(err, fault.NotFound) || len(kill.engaged) != 0 {
		t.Errorf("an unknown secret: %v; engaged %v", err, kill.engaged)
	}
	s, err := f.vault.Compromised(ctx, admin, "fin", "prod", "pasted in a public channel", true)
	if err != nil || s.RotateNow == nil || s.RotateNow.Cause != vault.CauseCompromised || !s.Overdue || len(s.KillSwitches) != 2 {
		t.Fatalf("compromised: %+v, %v", s, err)
	}
	if ups := slices.Sorted(func(y func(string) bool) {
		for _, u := range kill.engaged {
			y(u)
		}
	}); !slices.Equal(ups, []string{"fin", "fin-b"}) {
		t.Errorf("kill switches on %v", ups)
	}
	if n, _ := f.vault.CheckOverdue(ctx); n != 1 {
		t.Errorf("%d alerts right after the compromise", n)
	}
	if l, _ := f.vault.List(ctx, admin, true); len(l) != 1 || l[0].Environment != "prod" {
		t.Errorf("overdue: %+v", l)
	}
	recs := f.records(t, vault.EventCompromised)
	last := recs[len(recs)-1]
	if last.Outcome != audit.Success || last.Detail["reason"] != "pasted in a public channel" || last.Detail["environment"] != "prod" {
		t.Errorf("record: %+v", last)
	}
	// The dev value is not affected; replacing prod releases both switches.
	f.set(t, "fin", "", "dev2-"+value, "fin")
	if len(kill.released) != 0 {
		t.Errorf("released by another environment's rotation: %v", kill.released)
	}
	f.set(t, "fin", "prod", "new-"+value, "fin", "fin-b")
	if len(kill.released) != 2 {
		t.Errorf("released %v", kill.released)
	}
	if l, _ := f.vault.List(ctx, admin, true); len(l) != 0 {
		t.Errorf("still overdue: %+v", l)
	}
	if err := f.vault.ReleaseReplaced(ctx); err != nil || len(kill.released) != 2 {
		t.Errorf("released again: %v %v", kill.released, err)
	}
	// A kill switch that cannot be engaged refuses the compromise (the
	// cause on record); nothing is marked.
	kill.fail = true
	if _, err := f.vault.Compromised(ctx, admin, "fin", "", "leak", true); !fault.Is(err, fault.Unavailable) {
		t.Errorf("with the kill switches down: %v", err)
	}
	f.noValue(t, value, "new-"+value, "dev-"+value)
}

// A replaced version's kill switches are released even if the release at
// rotation was interrupted: the background check takes it up.
func TestReleaseResumes(t *testing.T) {
	f := newFixture(t)
	f.set(t, "fin", "", value, "fin")
	kill := &fakeKill{engaged: map[string]string{}}
	f.vault.SetKiller(kill)
	if _, err := f.vault.Compromised(ctx, admin, "fin", "", "leak", true); err != nil {
		t.Fatal(err)
	}
	f.vault.SetKiller(nil) // the release at rotation cannot happen
	f.set(t, "fin", "", "new-"+value, "fin")
	if len(kill.released) != 0 {
		t.Fatal("released without a killer")
	}
	f.vault.SetKiller(kill)
	if err := f.vault.ReleaseReplaced(ctx); err != nil || len(kill.released) != 1 {
		t.Errorf("released %v, %v", kill.released, err)
	}
}

// accessLost runs AccessLost in a record's transaction, as identity does.
func (f *fixture) accessLost(t *testing.T, user string, disabled bool, before, after authz.Grants) []string {
	t.Helper()
	rec, err := f.env.Writer.Write(ctx, audit.Entry{Record: audit.Record{Event: "user-disable", Outcome: audit.Success, Actor: "root", Target: "user:" + user},
		Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
			return f.vault.AccessLost(ctx, tx, user, disabled, before, after, r)
		}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if l, ok := rec.Detail["secrets_rotate_now"].([]string); ok {
		out = l
	}
	return out
}

func marked(t *testing.T, f *fixture) []string {
	t.Helper()
	l, err := f.vault.List(ctx, admin, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range l {
		if s.RotateNow != nil {
			out = append(out, s.Name+"/"+s.Environment)
		}
	}
	return out
}

// Disabling someone, or taking away what let them reach secret values,
// marks exactly the secrets they could reach: every one for a secrets
// manager, an admin or a tools manager (who can point an upstream at
// themselves); for anyone else who is disabled, the ones whose current
// value they set; nothing for a change that leaves their reach.
func TestAccessLostMarksExactlyWhatWasReachable(t *testing.T) {
	ms := authz.Grants{{Action: authz.ManageSecrets, Resource: authz.All}}
	mt := authz.Grants{{Action: authz.ManageTools, Resource: authz.All}}
	inv := authz.Grants{{Action: authz.Invoke, Resource: "fin.*"}}
	adm := authz.Grants{{Action: authz.Admin, Resource: authz.All}}
	seed := func(t *testing.T) *fixture {
		f := newFixture(t)
		f.set(t, "a", "", value, "fin")
		f.set(t, "a", "prod", value, "fin")
		bob := &authn.Principal{User: "bob", Perms: authz.Permissions{Roles: ms}}
		if _, err := f.vault.Set(ctx, bob, "b", "", []byte(value), []string{"fin"}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	all := []string{"a/default", "a/prod", "b/default"}
	for _, c := range []struct {
		name          string
		user          string
		disabled      bool
		before, after authz.Grants
		want          []string
	}{
		{"a disabled secrets manager", "carol", true, ms, nil, all},
		{"a disabled admin", "carol", true, adm, nil, all},
		{"a disabled tools manager", "carol", true, mt, nil, all},
		{"a secrets manager losing the role", "carol", false, append(ms, inv...), inv, all},
		{"a secrets manager keeping it through admin", "carol", false, append(ms, adm...), adm, nil},
		{"a disabled invoker", "carol", true, inv, nil, nil},
		{"an invoker losing a role", "carol", false, inv, nil, nil},
		{"a disabled user who set b", "bob", true, inv, nil, []string{"b/default"}},
		{"a user who set b losing a role, keeping no reach", "bob", false, inv, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := seed(t)
			got := f.accessLost(t, c.user, c.disabled, c.before, c.after)
			if m := marked(t, f); !slices.Equal(m, c.want) {
				t.Errorf("marked %v, want %v", m, c.want)
			}
			if len(got) != len(c.want) {
				t.Errorf("the record names %v", got)
			}
			for _, s := range mustList(t, f) {
				if s.RotateNow != nil && (s.RotateNow.Cause != vault.CauseStaffChange || !strings.Contains(s.RotateNow.Reason, c.user) || s.RotateNow.By != "root") {
					t.Errorf("mark %+v", s.RotateNow)
				}
			}
			if n, _ := f.vault.CheckOverdue(ctx); n != len(c.want) {
				t.Errorf("%d alerts", n)
			}
		})
	}
}

func mustList(t *testing.T, f *fixture) []vault.Secret {
	t.Helper()
	l, err := f.vault.List(ctx, admin, false)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
