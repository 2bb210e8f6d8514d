package recovery

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
)

// rec builds a record as govern writes it: a decision's detail names its
// upstream; set adds or overrides detail members.
func rec(seq uint64, event string, outcome audit.Outcome, rid, target string, set map[string]any) audit.Record {
	r := audit.Record{Seq: seq, Event: event, Outcome: outcome, Actor: "alice", KeyID: "k1", RequestID: rid, Target: target,
		Detail: map[string]any{"upstream": "crm"}}
	for k, v := range set {
		if v == nil {
			delete(r.Detail, k)
		} else {
			r.Detail[k] = v
		}
	}
	return r
}

// cites is the detail of an outcome naming decision seq, as a store
// reads it back.
func cites(seq uint64) map[string]any {
	return map[string]any{"decision_seq": json.Number(strconv.FormatUint(seq, 10))}
}

// Which decisions need an outcome record of their own.
func TestAwaits(t *testing.T) {
	ok, denied, failed := audit.Success, audit.Denied, audit.Failed
	for _, c := range []struct {
		name string
		r    audit.Record
		want string // the outcome event; "" none
	}{
		{"a tool call sent upstream", rec(1, govern.EventToolCall, ok, "r", "tool:crm.lookup", nil), govern.EventToolResult},
		{"a prompt sent upstream", rec(1, govern.EventPromptGet, ok, "r", "prompt:crm.greet", nil), govern.EventPromptResult},
		{"a resource read sent upstream", rec(1, govern.EventResourceRead, ok, "r", "resource:crm://a", nil), govern.EventResourceResult},
		{"denied: it ended there", rec(1, govern.EventToolCall, denied, "r", "tool:crm.lookup", nil), ""},
		{"held for approval: it ended there", rec(1, govern.EventToolCall, denied, "r", "tool:crm.lookup", map[string]any{"approval": "apr_1"}), ""},
		{"invalid arguments: it ended there", rec(1, govern.EventToolCall, failed, "r", "tool:crm.lookup", nil), ""},
		{"a built-in tool: no upstream", rec(1, govern.EventToolCall, ok, "r", "tool:discover_tools", map[string]any{"upstream": nil, "results": 3}), ""},
		{"a continuation of a parked call", rec(1, govern.EventToolCall, ok, "r", "tool:crm.lookup", map[string]any{"parked": true}), ""},
		{"an outcome", rec(1, govern.EventToolResult, ok, "r", "tool:crm.lookup", nil), ""},
		{"a completion (no outcome record)", rec(1, govern.EventCompletion, ok, "r", "prompt:crm.greet", nil), ""},
		{"an admin action", rec(1, audit.EventUserCreate, ok, "r", "user:bob", nil), ""},
	} {
		got, _ := awaits(&c.r)
		if got != c.want {
			t.Errorf("%s: awaits %q, want %q", c.name, got, c.want)
		}
	}
}

// The decisions left open by each sequence of records.
func TestPairing(t *testing.T) {
	ok, denied := audit.Success, audit.Denied
	call, result := govern.EventToolCall, govern.EventToolResult
	const tool = "tool:crm.lookup"
	for _, c := range []struct {
		name string
		recs []audit.Record
		open []uint64
	}{
		{"answered", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, result, ok, "r1", tool, cites(1))}, nil},
		{"under way at the crash", []audit.Record{
			rec(1, call, ok, "r1", tool, nil)}, []uint64{1}},
		{"an answered call, then one under way, under one client-chosen request id", []audit.Record{
			rec(1, call, ok, "trace", tool, nil), rec(2, result, ok, "trace", tool, cites(1)), rec(3, call, ok, "trace", tool, nil)}, []uint64{3}},
		{"two concurrent calls under one request id, the later one answered first", []audit.Record{
			rec(1, call, ok, "trace", tool, nil), rec(2, call, ok, "trace", tool, nil), rec(3, result, ok, "trace", tool, cites(2))}, []uint64{1}},
		{"answered in the other order", []audit.Record{
			rec(1, call, ok, "a", tool, nil), rec(2, call, ok, "b", tool, nil), rec(3, result, ok, "b", tool, cites(2)),
			rec(4, result, ok, "a", tool, cites(1))}, nil},
		{"held for approval, approved, answered", []audit.Record{
			rec(1, call, denied, "r1", tool, map[string]any{"approval": "apr_1"}), rec(2, call, ok, "r1", tool, map[string]any{"approval": "apr_1"}),
			rec(3, result, ok, "r1", tool, cites(2))}, nil},
		{"held, approved, under way", []audit.Record{
			rec(1, call, denied, "r1", tool, map[string]any{"approval": "apr_1"}), rec(2, call, ok, "r1", tool, map[string]any{"approval": "apr_1"})}, []uint64{2}},
		// A 2026-07-28 client's call that asked its client a question: the
		// answer comes in a request of its own (another request id), whose
		// decision attaches to the call; the call's one outcome is written
		// when it ends, under the request that started it.
		{"a parked call, continued and answered", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, govern.EventToolCall, ok, "r2", tool, map[string]any{"parked": true}),
			rec(3, result, ok, "r1", tool, cites(1))}, nil},
		{"a parked call, continued twice, under way", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, call, ok, "r2", tool, map[string]any{"parked": true}),
			rec(3, call, ok, "r3", tool, map[string]any{"parked": true})}, []uint64{1}},
		{"a continuation refused by policy ends nothing of its own", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, call, denied, "r2", tool, map[string]any{"parked": true}),
			rec(3, result, audit.Failed, "r1", tool, cites(1))}, nil},
		{"a built-in answers without an outcome record", []audit.Record{
			rec(1, call, ok, "r1", "tool:approval_status", map[string]any{"upstream": nil})}, nil},
		{"prompts and resources", []audit.Record{
			rec(1, govern.EventPromptGet, ok, "r1", "prompt:crm.greet", nil), rec(2, govern.EventResourceRead, ok, "r2", "resource:crm://a", nil),
			rec(3, govern.EventPromptResult, ok, "r1", "prompt:crm.greet", cites(1))}, []uint64{2}},
		{"an outcome of another kind does not answer a decision it cites", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, govern.EventPromptResult, ok, "r1", tool, cites(1))}, []uint64{1}},
		{"an outcome citing a decision before the records read", []audit.Record{
			rec(5, result, ok, "r0", tool, cites(4)), rec(6, call, ok, "r0", tool, nil)}, []uint64{6}},
		{"a mark by an earlier recovery is the outcome", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, result, audit.UnknownAfterCrash, "r1", tool, cites(1))}, nil},
		// Outcomes written before they cited their decision: the earliest
		// open decision of the same request, principal and target.
		{"older outcomes pair first in, first out", []audit.Record{
			rec(1, call, ok, "trace", tool, nil), rec(2, call, ok, "trace", tool, nil), rec(3, result, ok, "trace", tool, map[string]any{})}, []uint64{2}},
		{"an older outcome of another principal answers nothing", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), func() audit.Record { r := rec(2, result, ok, "r1", tool, nil); r.Actor = "mallory"; return r }()}, []uint64{1}},
		{"an older outcome of another target answers nothing", []audit.Record{
			rec(1, call, ok, "r1", tool, nil), rec(2, result, ok, "r1", "tool:crm.pay", nil)}, []uint64{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPairing()
			for i := range c.recs {
				p.add(&c.recs[i])
			}
			var got []uint64
			for _, d := range p.unanswered() {
				got = append(got, d.Seq)
			}
			if !slices.Equal(got, c.open) {
				t.Errorf("open %v, want %v", got, c.open)
			}
			if len(p.byCall) != len(distinctCalls(p)) {
				t.Errorf("the index holds %d calls for %d open decisions", len(p.byCall), len(p.open))
			}
		})
	}
}

// distinctCalls is the call keys of the open decisions: what the index
// must hold, no more (closed decisions leave it).
func distinctCalls(p *pairing) map[call]bool {
	m := map[call]bool{}
	for _, d := range p.open {
		m[callOf(outcomeOf[d.Event], &d)] = true
	}
	return m
}

// Integers in details read back as json.Number; what a store cannot hold
// is not a seq.
func TestNumber(t *testing.T) {
	for _, c := range []struct {
		v    any
		want uint64
		ok   bool
	}{
		{json.Number("42"), 42, true}, {uint64(7), 7, true}, {3, 3, true}, {int64(9), 9, true},
		{-1, 0, false}, {json.Number("-1"), 0, false}, {json.Number("1.5"), 0, false}, {"42", 0, false}, {nil, 0, false},
	} {
		if got, ok := number(c.v); got != c.want || ok != c.ok {
			t.Errorf("number(%#v) = %d, %v; want %d, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}
