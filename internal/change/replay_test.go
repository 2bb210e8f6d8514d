package change

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/policy"
)

func compile(t *testing.T, src string, version int) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p.Version = version
	return p
}

const basePolicy = `version: 1
rules:
  - id: pay-held
    when: tool.name == "fin.pay"
    decision: approve
`

// A replay on a recorded log flips exactly the decisions the proposal
// changes, per tool and per user, and counts the decisions it cannot
// reproduce by cause instead of guessing.
func TestReplayReportsExactlyTheFlips(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	rec := func(seq uint64, user, tool, decision string, pv any) audit.Record {
		return audit.Record{Seq: seq, Time: now, Event: "tool-call", Actor: user, Target: "tool:" + tool,
			Detail: map[string]any{"decision": decision, "policy_version": pv, "reasons": []any{"x"}}}
	}
	recs := []audit.Record{
		rec(1, "alice", "fin.lookup", "allow", json.Number("1")),
		rec(2, "bob", "fin.lookup", "allow", json.Number("1")),
		rec(3, "alice", "fin.pay", "approve", json.Number("1")),
		rec(4, "alice", "fin.pay", "allow", json.Number("1")),                                             // recorded allow, reproduced approve: arguments or history mattered
		rec(5, "ghost", "fin.lookup", "allow", json.Number("1")),                                          // user gone
		rec(6, "alice", "gone.tool", "allow", json.Number("1")),                                           // tool gone
		rec(7, "alice", "fin.lookup", "allow", json.Number("9")),                                          // policy version gone
		{Seq: 8, Event: "tool-call", Actor: "alice", Target: "tool:fin.lookup", Detail: map[string]any{}}, // refused before the policy: skipped
	}
	facts := func(r *audit.Record) (policy.Input, string) {
		tool := strings.TrimPrefix(r.Target, "tool:")
		switch {
		case r.Actor == "ghost":
			return policy.Input{}, CauseUserGone
		case tool == "gone.tool":
			return policy.Input{}, CauseToolGone
		}
		return policy.Input{User: r.Actor, Granted: true, Tool: policy.Tool{Name: tool}, Now: r.Time, Environment: "default"}, ""
	}
	own := func(v int) *policy.Policy {
		if v == 1 {
			return compile(t, basePolicy, 1)
		}
		return nil
	}
	// The proposal denies lookups for alice and allows payments.
	proposed := compile(t, `version: 1
rules:
  - id: no-lookups-alice
    when: tool.name == "fin.lookup" && principal.user == "alice"
    decision: deny
`, 0)
	rep := Replay(recs, facts, own, proposed)
	if rep.Considered != 7 || rep.Replayed != 3 || rep.Unchanged != 1 {
		t.Fatalf("counts: %+v", rep)
	}
	if len(rep.Changed) != 2 || rep.Changed["allow→deny"] != 1 || rep.Changed["approve→allow"] != 1 || rep.Loosened != 1 {
		t.Fatalf("changed: %+v", rep.Changed)
	}
	if rep.ByUser["alice"]["allow→deny"] != 1 || rep.ByUser["bob"] != nil || rep.ByTool["fin.pay"]["approve→allow"] != 1 || rep.ByTool["fin.lookup"]["allow→deny"] != 1 {
		t.Fatalf("by tool %+v, by user %+v", rep.ByTool, rep.ByUser)
	}
	if rep.Unreproducible[CauseDiffers] != 1 || rep.Unreproducible[CauseUserGone] != 1 || rep.Unreproducible[CauseToolGone] != 1 || rep.Unreproducible[CausePolicyGone] != 1 {
		t.Fatalf("unreproducible: %+v", rep.Unreproducible)
	}
	if len(rep.Examples) != 2 || rep.Examples[0].Seq != 1 || rep.Examples[0].To != "deny" || rep.Examples[1].Seq != 3 {
		t.Fatalf("examples: %+v", rep.Examples)
	}
	if s := rep.Summary(); !strings.Contains(s, "7 recorded decisions, 3 replayed: 1 unchanged, changed allow→deny 1, approve→allow 1; 4 not reproducible") {
		t.Errorf("summary: %s", s)
	}
	// The same policy replayed changes nothing.
	if rep := Replay(recs, facts, own, compile(t, basePolicy, 0)); len(rep.Changed) != 0 || rep.Unchanged != 3 {
		t.Errorf("identity replay: %+v", rep)
	}
}

// Examples are bounded per transition, whatever the log holds.
func TestReplayExamplesBounded(t *testing.T) {
	var recs []audit.Record
	for i := range 50 {
		recs = append(recs, audit.Record{Seq: uint64(i + 1), Actor: "u", Target: "tool:t", Detail: map[string]any{"decision": "allow", "policy_version": 1}})
	}
	facts := func(r *audit.Record) (policy.Input, string) {
		return policy.Input{User: r.Actor, Granted: true, Tool: policy.Tool{Name: "t"}, Environment: "default"}, ""
	}
	base := compile(t, "version: 1\nrules: []\n", 1)
	rep := Replay(recs, facts, func(int) *policy.Policy { return base }, compile(t, "version: 1\nrules:\n  - id: d\n    when: \"true\"\n    decision: deny\n", 0))
	if rep.Changed["allow→deny"] != 50 || len(rep.Examples) != examplesPer {
		t.Fatalf("%+v", rep)
	}
}
