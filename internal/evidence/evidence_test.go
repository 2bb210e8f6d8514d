package evidence_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/evidence"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
)

var ctx = context.Background()

type fixture struct {
	env   *sqlitetest.Env
	clock *testutil.Clock
	svc   *approval.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: testutil.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))}
	f.env = sqlitetest.New(t, f.clock.Now)
	var err error
	if f.svc, err = approval.New(f.env.Store, f.env.Writer, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) write(t *testing.T, r audit.Record) audit.Record {
	t.Helper()
	rec, err := f.env.Writer.Write(ctx, audit.Entry{Record: r})
	if err != nil {
		t.Fatal(err)
	}
	f.env.Settle() // the evidence queries read the index
	f.clock.Advance(time.Second)
	return rec
}

var carol = &authn.Principal{User: "carol", KeyID: "carolkey", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.Approve, Resource: "fin.*"}}}}

// request holds a call of user's on fin.pay, amount n.
func (f *fixture) request(t *testing.T, user string, n int) approval.Approval {
	t.Helper()
	args := json.RawMessage(fmt.Sprintf(`{"amount":%d}`, n))
	a, _, err := f.svc.Request(ctx, approval.Approval{Requester: user, KeyID: user + "key", Tool: "fin.pay", Upstream: "fin", ToolVersion: 1, ToolDigest: "d1",
		ArgsSHA256: fmt.Sprintf("sha-%d", n), Args: args, RequestID: fmt.Sprintf("held-%d", n),
		Decision: policy.Decision{Effect: "approve", Requires: []policy.Requirement{{Approvers: 1}}, Expires: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	return a
}

func call(a approval.Approval) approval.Call {
	return approval.Call{Requester: a.Requester, Tool: a.Tool, ToolDigest: a.ToolDigest, ArgsSHA256: a.ArgsSHA256}
}

// An approval record tells one approval's whole story from the chain:
// every record about it, oldest first, each citing the seq of a record
// that is on the chain as cited; for an executed one, the call it let
// through and how it ended. Records are newest first and filtered by
// requester and time; the chain they cite verifies, and a tampered one
// does not.
func TestApprovalRecords(t *testing.T) {
	f := newFixture(t)
	executed := f.request(t, "alice", 1)
	if _, err := f.svc.Decide(ctx, carol, executed.ID, true, "fine"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := f.svc.Claim(ctx, call(executed), "alicekey", "run-1"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	f.write(t, audit.Record{Event: "tool-call", Outcome: audit.Success, Actor: "alice", RequestID: "run-1", Target: "tool:fin.pay"})
	f.write(t, audit.Record{Event: "secret-access", Outcome: audit.Success, Actor: "alice", RequestID: "run-1", Target: "secret:fin"}) // same call, another target
	f.write(t, audit.Record{Event: "tool-result", Outcome: audit.Failed, Reason: "timeout", Actor: "alice", RequestID: "run-1", Target: "tool:fin.pay",
		Detail: map[string]any{"latency_us": 30000000}})
	denied := f.request(t, "alice", 2)
	if _, err := f.svc.Decide(ctx, carol, denied.ID, false, "no"); err != nil {
		t.Fatal(err)
	}
	approved := f.request(t, "bob", 3)
	f.svc.Decide(ctx, carol, approved.ID, true, "ok")
	pending := f.request(t, "alice", 4)

	recs, err := evidence.ApprovalRecords(ctx, f.env.Store, f.env.Store, evidence.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Approval.ID+" "+r.Outcome)
		if r.Kind != evidence.KindApproval {
			t.Errorf("kind %s", r.Kind)
		}
	}
	want := []string{pending.ID + " pending", approved.ID + " approved", denied.ID + " denied", executed.ID + " executed"}
	if !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	ex := recs[3]
	events := func(refs []evidence.Ref) []string {
		var out []string
		for _, r := range refs {
			out = append(out, r.Event)
		}
		return out
	}
	if got := events(ex.Records); !slices.Equal(got, []string{approval.EventRequested, approval.EventDecided, approval.EventUsed}) {
		t.Errorf("executed approval's records %v", got)
	}
	if ex.Execution == nil || ex.Execution.RequestID != "run-1" || ex.Execution.Outcome != audit.Failed || ex.Execution.Reason != "timeout" ||
		fmt.Sprint(ex.Execution.LatencyUS) != "30000000" || !slices.Equal(events(ex.Execution.Records), []string{"tool-call", "tool-result"}) {
		t.Errorf("execution %+v", ex.Execution)
	}
	if recs[1].Execution != nil || recs[2].Execution != nil {
		t.Error("an approval that let nothing through has an execution")
	}
	if recs[2].Records[1].Actor != "carol" || recs[2].Approval.Status != approval.Denied {
		t.Errorf("the denial: %+v", recs[2])
	}

	// Every cited seq is that record on the chain.
	chain := f.env.Records(t)
	for _, r := range recs {
		refs := r.Records
		if r.Execution != nil {
			refs = append(slices.Clone(refs), r.Execution.Records...)
		}
		for _, ref := range refs {
			c := chain[ref.Seq-1]
			if c.Seq != ref.Seq || c.Event != ref.Event || c.Outcome != ref.Outcome || c.Reason != ref.Reason || c.Actor != ref.Actor || !c.Time.Equal(ref.Time) {
				t.Errorf("ref %+v does not cite record %+v", ref, c)
			}
		}
	}

	for name, c := range map[string]struct {
		q    evidence.Query
		want []string
	}{
		"by requester": {evidence.Query{User: "bob", Limit: 10}, []string{approved.ID}},
		"limit":        {evidence.Query{Limit: 2}, []string{pending.ID, approved.ID}},
		"since":        {evidence.Query{Since: approved.CreatedAt, Limit: 10}, []string{pending.ID, approved.ID}},
		"until":        {evidence.Query{Until: denied.CreatedAt, Limit: 10}, []string{executed.ID}},
	} {
		rs, err := evidence.ApprovalRecords(ctx, f.env.Store, f.env.Store, c.q)
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.Approval.ID)
		}
		if err != nil || !slices.Equal(ids, c.want) {
			t.Errorf("%s: %v, %v; want %v", name, ids, err, c.want)
		}
	}

	f.env.Verify(t) // closes the writer
	path := f.env.Store.Path()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Rewrite who decided: the evidence would now say dave, and the chain
	// says it was altered.
	if _, err := db.Exec(`UPDATE audit_records SET actor = 'dave' WHERE seq = ?`, recs[2].Records[1].Seq); err != nil {
		t.Fatal(err)
	}
	cp, err := audit.ReadCheckpointFile(f.env.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	_, err = audit.Verify(ctx, f.env.Store, f.env.Public, cp)
	if !audit.IsChainError(err) {
		t.Errorf("a tampered record cited by the evidence verified: %v", err)
	}
	again, _ := evidence.ApprovalRecords(ctx, f.env.Store, f.env.Store, evidence.Query{Limit: 10})
	if again[2].Records[1].Actor != "dave" || again[2].Records[1].Seq != recs[2].Records[1].Seq {
		t.Errorf("the evidence does not cite the tampered record: %+v", again[2].Records[1])
	}
}

// An exception record is a denial or failure of an exceptional event,
// with what Ostiary did about it; successes and other events are not
// exceptions. Newest first, by actor and time, up to the limit.
func TestExceptionRecords(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		rec        audit.Record
		exception  string // "" if not an exception
		mitigation string
	}{
		{audit.Record{Event: "tool-call", Outcome: audit.Denied, Reason: "policy-deny", Actor: "alice", Target: "tool:fin.pay",
			Detail: map[string]any{"reasons": []any{"too-large", "after-hours"}, "risk_score": 80, "policy_version": 3}}, "deny", "refused by policy"},
		{audit.Record{Event: "tool-call", Outcome: audit.Denied, Reason: "tool-not-permitted", Actor: "alice"}, "deny", "exactly like an unknown tool"},
		{audit.Record{Event: "tool-call", Outcome: audit.Denied, Reason: "approval-required", Actor: "alice", Detail: map[string]any{"approval": "apr_x"}}, "deny", "held for approval as apr_x"},
		{audit.Record{Event: "tool-call", Outcome: audit.Denied, Reason: "approval-required", Actor: "alice"}, "deny", "held for approval; nothing"},
		{audit.Record{Event: "tool-call", Outcome: audit.Denied, Reason: "arguments-invalid", Actor: "bob"}, "deny", "pinned input schema"},
		{audit.Record{Event: "tool-call", Outcome: audit.Denied, Reason: "header-mismatch", Actor: "bob"}, "deny", "Mcp-Param headers"},
		{audit.Record{Event: "tool-call", Outcome: audit.Failed, Reason: "tool-schema-invalid", Actor: "bob"}, "failure", "pinned schema is invalid"},
		{audit.Record{Event: "tool-result", Outcome: audit.Failed, Reason: "timeout", Actor: "bob"}, "failure", "did not answer within"},
		{audit.Record{Event: "tool-result", Outcome: audit.Failed, Reason: "upstream-error", Actor: "bob"}, "failure", "circuit breaker"},
		{audit.Record{Event: "tool-result", Outcome: audit.Failed, Reason: "refused-by-upstream", Actor: "bob"}, "failure", "the upstream answered with an error"},
		{audit.Record{Event: "tool-result", Outcome: audit.Failed, Reason: "client-cancelled", Actor: "bob"}, "failure", "cancelled or went away"},
		{audit.Record{Event: "tool-result", Outcome: audit.Failed, Reason: "gateway-stopping", Actor: "bob"}, "failure", "graceful stop"},
		{audit.Record{Event: "killswitch-block", Outcome: audit.Denied, Reason: "killswitch", Actor: "bob"}, "deny", "kill switch"},
		{audit.Record{Event: "rate-limited", Outcome: audit.Denied, Reason: "rate-limit-key", Actor: "bob"}, "deny", "429"},
		{audit.Record{Event: approval.EventDecided, Outcome: audit.Denied, Reason: "forbidden", Actor: "alice"}, "deny", "vote was refused"},
		{audit.Record{Event: "webhook-delivery", Outcome: audit.Failed, Reason: "unavailable", Actor: "system"}, "failure", "not delivered"},
		{audit.Record{Event: "authn-failure", Outcome: audit.Denied, Reason: "key-unknown"}, "deny", "401"},
		{audit.Record{Event: "tool-call", Outcome: audit.Failed, Reason: "something-new", Actor: "bob"}, "failure", "refused or failed as recorded"},
		{audit.Record{Event: "tool-call", Outcome: audit.Success, Actor: "alice"}, "", ""},
		{audit.Record{Event: "user-create", Outcome: audit.Denied, Reason: "forbidden", Actor: "alice"}, "", ""},
	} {
		rec := f.write(t, c.rec)
		xs, err := evidence.ExceptionRecords(ctx, f.env.Store, evidence.Query{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if c.exception == "" {
			if len(xs) == 1 && xs[0].Seq == rec.Seq {
				t.Errorf("%s %s is an exception", c.rec.Event, c.rec.Outcome)
			}
			continue
		}
		if len(xs) != 1 || xs[0].Seq != rec.Seq {
			t.Errorf("%s %s: not the newest exception: %+v", c.rec.Event, c.rec.Reason, xs)
			continue
		}
		x := xs[0]
		if x.Kind != evidence.KindException || x.Exception != c.exception || x.Event != c.rec.Event || x.Reason != c.rec.Reason || x.Actor != c.rec.Actor ||
			x.Outcome != c.rec.Outcome || !strings.Contains(x.Mitigation, c.mitigation) {
			t.Errorf("%s %s: %+v", c.rec.Event, c.rec.Reason, x)
		}
	}
	all, err := evidence.ExceptionRecords(ctx, f.env.Store, evidence.Query{Limit: 100})
	if err != nil || len(all) != 18 {
		t.Fatalf("%d exceptions, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq >= all[i-1].Seq {
			t.Errorf("not newest first at %d", i)
		}
	}
	first := all[len(all)-1]
	if !slices.Equal(first.PolicyReasons, []string{"too-large", "after-hours"}) || fmt.Sprint(first.RiskScore) != "80" || fmt.Sprint(first.PolicyVersion) != "3" {
		t.Errorf("the policy denial: %+v", first)
	}
	alices, _ := evidence.ExceptionRecords(ctx, f.env.Store, evidence.Query{User: "alice", Limit: 100})
	if len(alices) != 5 {
		t.Errorf("alice has %d exceptions", len(alices))
	}
	window, _ := evidence.ExceptionRecords(ctx, f.env.Store, evidence.Query{Since: all[5].Time, Until: all[1].Time, Limit: 100})
	if len(window) != 4 || window[0].Seq != all[2].Seq || window[3].Seq != all[5].Seq {
		t.Errorf("in [%v, %v): %+v", all[5].Time, all[1].Time, window)
	}
	if few, _ := evidence.ExceptionRecords(ctx, f.env.Store, evidence.Query{Limit: 3}); len(few) != 3 || few[0].Seq != all[0].Seq {
		t.Errorf("limit 3: %+v", few)
	}
}
