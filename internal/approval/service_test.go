package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
)

var ctx = context.Background()

// fixture is an approval service on a real store, with a clock the test
// moves and a notifier that remembers what it heard.
type fixture struct {
	env   *sqlitetest.Env
	clock *testutil.Clock
	svc   *approval.Service
	heard *heard
}

type heard struct {
	mu     sync.Mutex
	events []string
}

func (h *heard) Notify(event string, a approval.Approval) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, event+" "+string(a.Status))
}

func (h *heard) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: testutil.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)), heard: &heard{}}
	f.env = sqlitetest.New(t, f.clock.Now)
	var err error
	if f.svc, err = approval.New(f.env.Store, f.env.Writer, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	f.svc.SetNotifier(f.heard)
	return f
}

// person is a human holding the approve grant on fin.* (and the given
// roles), through key keyID.
func person(user, keyID string, roles ...string) *authn.Principal {
	return &authn.Principal{User: user, KeyID: keyID, Roles: roles, RequestID: "req-" + keyID,
		Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.Approve, Resource: "fin.*"}, {Action: authz.Invoke, Resource: "fin.*"}}}}
}

// call is alice's call of fin.pay with amount n, needing reqs.
func call(n int, reqs ...policy.Requirement) approval.Approval {
	if len(reqs) == 0 {
		reqs = []policy.Requirement{{Approvers: 1, Reason: "payments"}}
	}
	args := json.RawMessage(fmt.Sprintf(`{"amount":%d}`, n))
	return approval.Approval{Requester: "alice", KeyID: "alicekey1", Tool: "fin.pay", Upstream: "fin", ToolVersion: 1, ToolDigest: "digest-1",
		ArgsSHA256: fmt.Sprintf("sha-%d", n), Args: args, RequestID: fmt.Sprintf("call-%d", n),
		Decision: policy.Decision{Effect: "approve", Score: 60, Reasons: []string{"payment"}, Policy: 1, Requires: reqs, Expires: time.Hour}}
}

func (f *fixture) request(t *testing.T, a approval.Approval) approval.Approval {
	t.Helper()
	got, created, err := f.svc.Request(ctx, a)
	if err != nil || !created {
		t.Fatalf("request: created %v, %v", created, err)
	}
	return got
}

func (f *fixture) status(t *testing.T, id string) approval.Approval {
	t.Helper()
	a, err := f.env.Store.Approval(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// last returns the newest audit record of event.
func (f *fixture) last(t *testing.T, event string) audit.Record {
	t.Helper()
	rs, err := f.env.QueryAudit(ctx, audit.Query{Event: event, Limit: 1})
	if err != nil || len(rs) != 1 {
		t.Fatalf("no %s record: %v", event, err)
	}
	return rs[0]
}

func claimOf(a approval.Approval) approval.Call {
	return approval.Call{Requester: a.Requester, Tool: a.Tool, ToolDigest: a.ToolDigest, ArgsSHA256: a.ArgsSHA256}
}

// Nobody decides on their own request, through any of their keys; nor
// does the owner of a requesting service account, a service account, or
// anyone without the approve grant on the tool (their role's or their
// key's scope). Each refusal is on record as denied and changes nothing.
func TestSeparationOfDuties(t *testing.T) {
	f := newFixture(t)
	own := f.request(t, call(1))
	botCall := call(2)
	botCall.Requester, botCall.Owner, botCall.KeyID = "bot", "owner", "botkey1"
	bots := f.request(t, botCall)

	scoped := person("erin", "erinkey1")
	scoped.Perms.Scope = authz.Grants{{Action: authz.Invoke, Resource: "fin.*"}} // the key may call, not approve
	service := person("svc", "svckey1")
	service.Service = true
	noGrant := person("frank", "frankkey1")
	noGrant.Perms.Roles = authz.Grants{{Action: authz.Approve, Resource: "hr.*"}}
	for _, c := range []struct {
		name string
		p    *authn.Principal
		id   string
		want string
	}{
		{"the requester", person("alice", "alicekey1"), own.ID, "own request"},
		{"the requester through another key", person("alice", "alicekey2"), own.ID, "own request"},
		{"the owner of the requesting service account", person("owner", "ownerkey1"), bots.ID, "service account they own"},
		{"a service account", service, own.ID, "service accounts do not decide"},
		{"an approver of other tools", noGrant, own.ID, "approve grant"},
		{"a key scoped below approve", scoped, own.ID, "approve grant"},
	} {
		for _, approve := range []bool{true, false} {
			_, err := f.svc.Decide(ctx, c.p, c.id, approve, "looks fine")
			if !fault.Is(err, fault.Forbidden) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s (approve %v): %v", c.name, approve, err)
				continue
			}
			rec := f.last(t, approval.EventDecided)
			if rec.Outcome != audit.Denied || rec.Actor != c.p.User || rec.Target != "approval:"+c.id || rec.Reason != string(fault.Forbidden) {
				t.Errorf("%s: recorded %+v", c.name, rec)
			}
		}
	}
	for _, id := range []string{own.ID, bots.ID} {
		if a := f.status(t, id); a.Status != approval.Pending || len(a.Votes) != 0 {
			t.Errorf("a refused vote changed %s: %s, %d votes", id, a.Status, len(a.Votes))
		}
	}
	// The owner may approve any other request, and a human with the grant
	// this one.
	if _, err := f.svc.Decide(ctx, person("owner", "ownerkey1"), own.ID, true, "fine"); err != nil {
		t.Errorf("the owner of another account, on alice's request: %v", err)
	}
	if _, err := f.svc.Decide(ctx, person("carol", "carolkey1"), bots.ID, true, "fine"); err != nil {
		t.Errorf("a third person on the bot's request: %v", err)
	}
}

// N approvers are N distinct people, each holding the role a requirement
// names: a second vote by one person (through any key) is refused, and a
// vote without the role counts only towards requirements naming none.
func TestDistinctApprovers(t *testing.T) {
	f := newFixture(t)
	a := f.request(t, call(1, policy.Requirement{Approvers: 2, Reason: "two"}, policy.Requirement{Approvers: 1, Role: "finance-lead", Reason: "lead"}))
	if got := a.Needs(); !slices.Equal(got, []string{"2 approver(s)", "1 approver(s) with role finance-lead"}) {
		t.Errorf("needs %v", got)
	}
	steps := []struct {
		p      *authn.Principal
		err    fault.Kind
		status approval.Status
	}{
		{person("carol", "carolkey1", "staff"), "", approval.Pending},
		{person("carol", "carolkey2", "staff", "finance-lead"), fault.Conflict, approval.Pending}, // the same person, another key and role
		{person("dave", "davekey1", "staff"), "", approval.Pending},                               // two people, neither a lead
		{person("erin", "erinkey1", "finance-lead"), "", approval.Approved},
		{person("frank", "frankkey1", "finance-lead"), fault.Conflict, approval.Approved}, // settled
	}
	for i, s := range steps {
		got, err := f.svc.Decide(ctx, s.p, a.ID, true, fmt.Sprintf("vote %d", i))
		if s.err == "" && err != nil || s.err != "" && !fault.Is(err, s.err) {
			t.Fatalf("vote %d by %s: %v, want %q", i, s.p.User, err, s.err)
		}
		if st := f.status(t, a.ID); st.Status != s.status {
			t.Fatalf("after vote %d by %s: %s, want %s", i, s.p.User, st.Status, s.status)
		}
		if err == nil && got.Status != s.status {
			t.Errorf("vote %d: Decide says %s", i, got.Status)
		}
	}
	st := f.status(t, a.ID)
	if got := st.Tally(); !slices.Equal(got, []string{"+carol", "+dave", "+erin"}) {
		t.Errorf("tally %v", got)
	}
	if !slices.Equal(st.Votes[2].Roles, []string{"finance-lead"}) || st.DecidedAt.IsZero() {
		t.Errorf("the settling vote: %+v, decided %v", st.Votes[2], st.DecidedAt)
	}
	if rec := f.last(t, approval.EventDecided); rec.Outcome != audit.Failed || rec.Actor != "frank" {
		t.Errorf("a vote on a settled request: recorded %+v", rec)
	}
}

// The first deny settles a request, whatever the approvals before it; a
// deny also voids an approval its call has not used yet (deny wins), but
// not one already used.
func TestDenyWins(t *testing.T) {
	f := newFixture(t)
	two := policy.Requirement{Approvers: 2, Reason: "two"}
	a := f.request(t, call(1, two))
	if _, err := f.svc.Decide(ctx, person("carol", "c1"), a.ID, true, "ok"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.Decide(ctx, person("dave", "d1"), a.ID, false, "no"); err != nil || got.Status != approval.Denied {
		t.Fatalf("a deny after one approval: %s, %v", got.Status, err)
	}
	if rec := f.last(t, approval.EventDecided); rec.Detail["settled"] != "denied" || rec.Detail["voided"] != nil {
		t.Errorf("the settling deny recorded %v", rec.Detail)
	}
	if _, err := f.svc.Decide(ctx, person("erin", "e1"), a.ID, true, "ok"); !fault.Is(err, fault.Conflict) {
		t.Errorf("an approval after the deny: %v", err)
	}
	if st := f.status(t, a.ID); !slices.Equal(st.Tally(), []string{"+carol", "-dave"}) {
		t.Errorf("tally %v", st.Tally())
	}

	b := f.request(t, call(2))
	if got, err := f.svc.Decide(ctx, person("carol", "c1"), b.ID, true, "ok"); err != nil || got.Status != approval.Approved {
		t.Fatalf("approve: %s, %v", got.Status, err)
	}
	if got, err := f.svc.Decide(ctx, person("dave", "d1"), b.ID, false, "wait, no"); err != nil || got.Status != approval.Denied {
		t.Fatalf("a deny of an unused approval: %s, %v", got.Status, err)
	}
	if rec := f.last(t, approval.EventDecided); rec.Detail["voided"] != true {
		t.Errorf("the voiding deny recorded %v", rec.Detail)
	}
	if _, ok, err := f.svc.Claim(ctx, claimOf(b), "alicekey1", "call-2b"); ok || err != nil {
		t.Errorf("a voided approval was claimed: %v, %v", ok, err)
	}

	c := f.request(t, call(3))
	f.svc.Decide(ctx, person("carol", "c1"), c.ID, true, "ok")
	if _, ok, err := f.svc.Claim(ctx, claimOf(c), "alicekey1", "call-3b"); !ok || err != nil {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	if _, err := f.svc.Decide(ctx, person("dave", "d1"), c.ID, false, "too late"); !fault.Is(err, fault.Conflict) {
		t.Errorf("a deny of a used approval: %v", err)
	}
	if st := f.status(t, c.ID); st.Status != approval.Used {
		t.Errorf("after a late deny: %s", st.Status)
	}
	wantHeard := []string{
		"approval.requested pending", "approval.decided pending", "approval.decided denied",
		"approval.requested pending", "approval.decided approved", "approval.decided denied",
		"approval.requested pending", "approval.decided approved",
	}
	if got := f.heard.list(); !slices.Equal(got, wantHeard) {
		t.Errorf("notified %v", got)
	}
}

// A held call joins the open request for exactly the same call (same
// requester, tool version and arguments) instead of opening another; a
// different call, or the same one after its request expired, opens a new
// one. A user's open requests are capped.
func TestRequestJoinsIdenticalCall(t *testing.T) {
	f := newFixture(t)
	a := f.request(t, call(1))
	again, created, err := f.svc.Request(ctx, call(1))
	if err != nil || created || again.ID != a.ID {
		t.Errorf("the same call again: %s created %v, %v; want to join %s", again.ID, created, err, a.ID)
	}
	other := call(1)
	other.ToolDigest = "digest-2" // the tool changed meanwhile
	if b := f.request(t, other); b.ID == a.ID {
		t.Error("a call of another tool version joined")
	}
	bob := call(1)
	bob.Requester = "bob"
	if b := f.request(t, bob); b.ID == a.ID {
		t.Error("another requester's identical call joined")
	}
	f.clock.Advance(time.Hour) // a's request is past its expiry, not yet swept
	if b := f.request(t, call(1)); b.ID == a.ID {
		t.Error("a call joined an expired request")
	}
	rec := f.last(t, approval.EventRequested)
	if rec.Actor != "alice" || rec.Detail["args_sha256"] != "sha-1" || rec.Detail["expires_at"] != f.clock.Now().Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("recorded %+v", rec)
	}

	f.svc.SetMaxPending(2) // alice has one live request: the new one (the first two expired)
	f.request(t, call(5))
	_, _, err = f.svc.Request(ctx, call(6))
	var capErr *approval.PendingCapError
	if !errors.As(err, &capErr) || capErr.Max != 2 || !fault.Is(err, fault.Conflict) {
		t.Errorf("a third live request: %v", err)
	}
	if _, created, err := f.svc.Request(ctx, call(5)); err != nil || created {
		t.Errorf("joining an open request at the cap: %v, created %v", err, created)
	}
	if rs, _ := f.env.Store.Approvals(ctx, approval.Query{Requester: "alice", Status: approval.Pending, Limit: 10}); len(rs) != 4 { // 2 live, 2 expired
		t.Errorf("alice has %d pending requests", len(rs))
	}
}

// An approval is used once, by exactly the approved call, before it
// expires: of concurrent identical calls exactly one runs.
func TestClaimUseOnce(t *testing.T) {
	f := newFixture(t)
	a := f.request(t, call(1))
	if _, ok, _ := f.svc.Claim(ctx, claimOf(a), "alicekey1", "early"); ok {
		t.Error("a pending request was claimed")
	}
	f.svc.Decide(ctx, person("carol", "c1"), a.ID, true, "ok")
	for name, c := range map[string]approval.Call{
		"another requester": {Requester: "bob", Tool: a.Tool, ToolDigest: a.ToolDigest, ArgsSHA256: a.ArgsSHA256},
		"other arguments":   {Requester: a.Requester, Tool: a.Tool, ToolDigest: a.ToolDigest, ArgsSHA256: "sha-2"},
		"another version":   {Requester: a.Requester, Tool: a.Tool, ToolDigest: "digest-2", ArgsSHA256: a.ArgsSHA256},
	} {
		if _, ok, err := f.svc.Claim(ctx, c, "k", "r"); ok || err != nil {
			t.Errorf("%s claimed the approval: %v", name, err)
		}
	}
	const racers = 8
	wins := make([]bool, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			_, ok, err := f.svc.Claim(ctx, claimOf(a), "alicekey1", fmt.Sprintf("race-%d", i))
			if err != nil {
				t.Errorf("racer %d: %v", i, err)
			}
			wins[i] = ok
		})
	}
	wg.Wait()
	won := 0
	for _, w := range wins {
		if w {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d identical calls used one approval", won, racers)
	}
	st := f.status(t, a.ID)
	if st.Status != approval.Used || st.UsedAt.IsZero() {
		t.Errorf("after the claim: %s, used %v", st.Status, st.UsedAt)
	}
	if rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: approval.EventUsed, Outcome: audit.Success, Limit: 10}); len(rs) != 1 || rs[0].Target != "approval:"+a.ID {
		t.Errorf("use records: %+v", rs)
	}

	b := f.request(t, call(2))
	f.svc.Decide(ctx, person("carol", "c1"), b.ID, true, "ok")
	f.clock.Advance(time.Hour)
	if _, ok, _ := f.svc.Claim(ctx, claimOf(b), "alicekey1", "late"); ok {
		t.Error("an expired approval was claimed")
	}
}

// Expiry settles requests still pending, and approvals still unused, on
// record; a vote after expiry is refused; waiters wake.
func TestExpiry(t *testing.T) {
	f := newFixture(t)
	pending := f.request(t, call(1))
	approved := f.request(t, call(2))
	used := f.request(t, call(3))
	for _, a := range []approval.Approval{approved, used} {
		if _, err := f.svc.Decide(ctx, person("carol", "c1"), a.ID, true, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := f.svc.Claim(ctx, claimOf(used), "alicekey1", "r"); !ok {
		t.Fatal("claim failed")
	}
	woken, stop := f.svc.Wait(pending.ID)
	defer stop()
	if err := f.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if f.status(t, pending.ID).Status != approval.Pending {
		t.Error("a request expired before its time")
	}
	f.clock.Advance(time.Hour)
	if _, err := f.svc.Decide(ctx, person("dave", "d1"), pending.ID, true, "ok"); !fault.Is(err, fault.Conflict) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a vote after expiry: %v", err)
	}
	select {
	case <-woken:
		t.Fatal("a waiter woke before its request was settled")
	default:
	}
	if err := f.svc.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]approval.Status{pending.ID: approval.Expired, approved.ID: approval.Expired, used.ID: approval.Used} {
		if got := f.status(t, id).Status; got != want {
			t.Errorf("%s: %s, want %s", id, got, want)
		}
	}
	select {
	case <-woken: // the sweep wakes waiters before it returns
	default:
		t.Error("the expiry did not wake the request's waiter")
	}
	rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: approval.EventExpired, Limit: 10})
	was := map[any]int{}
	for _, r := range rs {
		was[r.Detail["was"]]++
	}
	if len(rs) != 2 || was["pending"] != 1 || was["approved"] != 1 {
		t.Errorf("expiry records: %+v", rs)
	}
	if n := strings.Count(strings.Join(f.heard.list(), ","), "approval.expired expired"); n != 2 {
		t.Errorf("%d expiries notified: %v", n, f.heard.list())
	}
	if err := f.svc.Expire(ctx); err != nil { // nothing more is due
		t.Fatal(err)
	}
	if rs, _ := f.env.QueryAudit(ctx, audit.Query{Event: approval.EventExpired, Limit: 10}); len(rs) != 2 {
		t.Errorf("a second sweep recorded %d expiries", len(rs))
	}
}

// A vote needs a valid id and a reason of at most MaxReason bytes; each
// refusal is recorded, a malformed id without repeating it.
func TestDecideValidates(t *testing.T) {
	f := newFixture(t)
	a := f.request(t, call(1))
	carol := person("carol", "c1")
	for _, c := range []struct {
		name, id, reason string
	}{
		{"bad id", "apr_../../etc", "ok"},
		{"no reason", a.ID, "  \t"},
		{"long reason", a.ID, strings.Repeat("x", approval.MaxReason+1)},
	} {
		if _, err := f.svc.Decide(ctx, carol, c.id, true, c.reason); !fault.Is(err, fault.Invalid) {
			t.Errorf("%s: %v", c.name, err)
		}
		rec := f.last(t, approval.EventDecided)
		if rec.Outcome != audit.Failed || rec.Reason != string(fault.Invalid) || len(fmt.Sprint(rec.Detail["reason"])) > 100 {
			t.Errorf("%s: recorded %+v", c.name, rec)
		}
	}
	if rec := f.last(t, approval.EventDecided); rec.Target != "approval:"+a.ID {
		t.Errorf("target %s", rec.Target)
	}
	if _, err := f.svc.Decide(ctx, carol, "apr_aaaaaaaaaaaaaaaaaaaaaaaaaa", true, "ok"); !fault.Is(err, fault.NotFound) {
		t.Errorf("a vote on a request that does not exist: %v", err)
	}
	if st := f.status(t, a.ID); st.Status != approval.Pending || len(st.Votes) != 0 {
		t.Errorf("refused votes changed the request: %+v", st)
	}
	f.env.Verify(t) // every refusal and request is on a chain that verifies
}

// Approvers see the requests on tools they may approve, auditors all,
// anyone their own; Show hides the rest as not found; Mine returns only
// the requester's own.
func TestVisibility(t *testing.T) {
	f := newFixture(t)
	fin := f.request(t, call(1))
	hrCall := call(2)
	hrCall.Tool, hrCall.Requester = "hr.fire", "bob"
	hr := f.request(t, hrCall)
	auditor := &authn.Principal{User: "ivy", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}
	stranger := &authn.Principal{User: "zed", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.Invoke, Resource: "*"}}}}
	ids := func(p *authn.Principal) []string {
		as, err := f.svc.List(ctx, p, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, a := range as {
			out = append(out, a.ID)
		}
		slices.Sort(out)
		return out
	}
	both := []string{fin.ID, hr.ID}
	slices.Sort(both)
	for name, c := range map[string]struct {
		p    *authn.Principal
		want []string
	}{
		"fin approver": {person("carol", "c1"), []string{fin.ID}},
		"auditor":      {auditor, both},
		"requester":    {&authn.Principal{User: "bob"}, []string{hr.ID}},
		"stranger":     {stranger, []string{}},
	} {
		if got := ids(c.p); !slices.Equal(got, c.want) {
			t.Errorf("%s sees %v, want %v", name, got, c.want)
		}
	}
	if _, err := f.svc.Show(ctx, person("carol", "c1"), hr.ID); !fault.Is(err, fault.NotFound) {
		t.Errorf("a fin approver shown an hr request: %v", err)
	}
	if a, err := f.svc.Show(ctx, auditor, hr.ID); err != nil || a.ID != hr.ID {
		t.Errorf("the auditor: %v", err)
	}
	if _, err := f.svc.Show(ctx, auditor, "not-an-id"); !fault.Is(err, fault.Invalid) {
		t.Errorf("a malformed id: %v", err)
	}
	if mine, _ := f.svc.Mine(ctx, "alice", hr.ID); len(mine) != 0 {
		t.Errorf("alice reads bob's request: %+v", mine)
	}
	if mine, _ := f.svc.Mine(ctx, "alice", ""); len(mine) != 1 || mine[0].ID != fin.ID {
		t.Errorf("alice's own: %+v", mine)
	}
	if mine, _ := f.svc.Mine(ctx, "alice", fin.ID); len(mine) != 1 {
		t.Errorf("alice's by id: %+v", mine)
	}
}
