package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The shipped policy compiles and passes its own tests.
func TestDefaultPolicy(t *testing.T) {
	p := mustParse(t, string(DefaultSource()))
	res, err := p.RunTests()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 8 {
		t.Fatalf("the default policy has %d tests", len(res))
	}
	for _, r := range res {
		if !r.Passed {
			t.Errorf("%s: %s", r.Name, strings.Join(r.Problems, "; "))
		}
	}
}

// The risk formula, pinned by examples.
func TestBaseScore(t *testing.T) {
	for _, c := range []struct {
		l       Labels
		service bool
		want    int
	}{
		{Labels{DataClasses: []string{"public"}}, false, 0},
		{Labels{DataClasses: []string{"internal"}}, false, 10},
		{Labels{DataClasses: []string{"internal"}}, true, 30},
		{Labels{DataClasses: []string{"unclassified"}}, false, 15},
		{Labels{DataClasses: []string{"made-up"}}, false, 15},
		{Labels{DataClasses: []string{"pii", "internal"}}, false, 30},
		{Labels{DataClasses: []string{"financial"}, Irreversible: true}, false, 55},
		{Labels{DataClasses: []string{"regulated"}}, false, 35},
		{Labels{DataClasses: []string{"secret"}, Egress: true}, false, 55},
		{Labels{DataClasses: []string{"secret"}, Irreversible: true, Egress: true}, true, 100},
		{Labels{DataClasses: []string{"public"}, Risk: "medium"}, false, 25},
		{Labels{DataClasses: []string{"public"}, Risk: "high"}, false, 50},
		{Labels{DataClasses: []string{"pii"}, Risk: "critical"}, false, 75},
		{Labels{DataClasses: []string{"secret"}, Irreversible: true, Risk: "low"}, true, 85},
		{Labels{}, false, 0},
	} {
		if got := BaseScore(c.l, c.service); got != c.want {
			t.Errorf("%+v service=%t: %d, want %d", c.l, c.service, got, c.want)
		}
	}
}

const ruleDoc = `
version: 1
rules:
  - id: big
    when: args.amount > 10000
    decision: approve
    approvers: 2
    approver_role: finance-approver
    wait: 30s
    risk: 15
  - id: weekend
    when: now.getDayOfWeek() == 0 || now.getDayOfWeek() == 6
    decision: deny
    message: No changes at weekends.
  - id: agent-pii
    when: principal.service && "pii" in tool.data_classes
    decision: approve
  - id: prod-only-ops
    when: principal.environment == "prod" && !("ops" in principal.roles)
    decision: deny
  - id: trusted-discount
    when: tool.name.startsWith("shop.") && principal.user == "alice"
    decision: allow
    risk: -30
  - id: secret-taint
    when: tool.egress && "secret" in session.classes
    decision: approve
  - id: scoped-keys
    when: principal.scope.size() > 0 && tool.irreversible
    decision: deny
`

func input(mod func(*Input)) Input {
	in := Input{User: "bob", Roles: []string{"staff"}, Environment: "default", Granted: true,
		Tool: Tool{Name: "fin.pay", Labels: &Labels{DataClasses: []string{"internal"}}},
		Args: map[string]any{"amount": json.Number("10")}, Now: time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)}
	if mod != nil {
		mod(&in)
	}
	return in
}

// One table row per criterion a rule can look at.
func TestEvaluateCriteria(t *testing.T) {
	p := mustParse(t, ruleDoc)
	p.Version = 7
	for _, c := range []struct {
		name    string
		mod     func(*Input)
		effect  Effect
		reasons []string
		score   int
	}{
		{"nothing matches", nil, Allow, []string{ReasonDefault}, 10},
		{"no grant", func(in *Input) { in.Granted = false }, Deny, []string{ReasonNoGrant}, 0},
		{"argument above threshold", func(in *Input) { in.Args["amount"] = json.Number("10000.5") }, Approve, []string{"big"}, 25},
		{"argument at threshold", func(in *Input) { in.Args["amount"] = json.Number("10000") }, Allow, []string{ReasonDefault}, 10},
		{"argument missing: hold", func(in *Input) { delete(in.Args, "amount") }, Approve, []string{"rule-error:big"}, 10},
		{"argument of the wrong type: hold", func(in *Input) { in.Args["amount"] = "20000" }, Approve, []string{"rule-error:big"}, 10},
		{"time", func(in *Input) { in.Now = time.Date(2026, 1, 10, 10, 0, 0, 0, time.UTC) }, Deny, []string{"weekend"}, 10},
		{"service account and data class", func(in *Input) {
			in.Service = true
			in.Tool.Labels.DataClasses = []string{"pii"}
		}, Approve, []string{"agent-pii"}, 50},
		{"environment and roles", func(in *Input) { in.Environment = "prod" }, Deny, []string{"prod-only-ops"}, 10},
		{"roles allow it", func(in *Input) { in.Environment, in.Roles = "prod", []string{"ops"} }, Allow, []string{ReasonDefault}, 10},
		{"allow rule lowers the score", func(in *Input) { in.User, in.Tool.Name = "alice", "shop.x" }, Allow, []string{"trusted-discount"}, 0},
		{"session history within the window", func(in *Input) {
			in.Tool.Labels.Egress = true
			in.Touched = map[string]time.Time{"secret": in.Now.Add(-10 * time.Minute)}
		}, Approve, []string{"secret-taint"}, 25},
		{"session history outside the window", func(in *Input) {
			in.Tool.Labels.Egress = true
			in.Touched = map[string]time.Time{"secret": in.Now.Add(-31 * time.Minute)}
		}, Allow, []string{ReasonDefault}, 25},
		{"key scope", func(in *Input) {
			in.Scope = []string{"invoke:fin.*"}
			in.Tool.Labels.Irreversible = true
		}, Deny, []string{"scoped-keys"}, 35},
		{"deny beats approve", func(in *Input) {
			in.Args["amount"] = json.Number("50000")
			in.Now = time.Date(2026, 1, 11, 10, 0, 0, 0, time.UTC)
		}, Deny, []string{"big", "weekend"}, 25},
		{"label alone demands approval", func(in *Input) {
			in.Tool.Labels.RequireApproval, in.Tool.Labels.Approvers = true, 3
		}, Approve, []string{ReasonLabel}, 10},
		{"unlabelled tool: hints as defaults", func(in *Input) {
			in.Tool.Labels = nil
			in.Tool.Hints = Hints{Destructive: true, OpenWorld: true}
		}, Allow, []string{ReasonDefault}, 55},
		{"unlabelled read-only tool: hints ignored", func(in *Input) {
			in.Tool.Labels = nil
			in.Tool.Hints = Hints{ReadOnly: true, Destructive: true, OpenWorld: true}
		}, Allow, []string{ReasonDefault}, 15},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := p.Evaluate(input(c.mod))
			if d.Effect != c.effect || !slices.Equal(d.Reasons, c.reasons) || d.Score != c.score {
				t.Errorf("got %s %v score %d, want %s %v score %d", d.Effect, d.Reasons, d.Score, c.effect, c.reasons, c.score)
			}
			if c.effect != Deny && c.mod != nil && d.Policy != 7 {
				t.Errorf("policy version %d", d.Policy)
			}
		})
	}
}

// What an approve decision asks of its approvers.
func TestEvaluateRequirements(t *testing.T) {
	p := mustParse(t, ruleDoc)
	d := p.Evaluate(input(func(in *Input) {
		in.Args["amount"] = json.Number("20000")
		in.Service = true
		in.Tool.Labels.DataClasses = []string{"pii"}
		in.Tool.Labels.RequireApproval, in.Tool.Labels.Approvers = true, 3
	}))
	want := []Requirement{{3, "", ReasonLabel}, {2, "finance-approver", "big"}, {1, "", "agent-pii"}}
	if d.Effect != Approve || !slices.Equal(d.Requires, want) || d.Wait != 30*time.Second || d.Expires != time.Hour {
		t.Errorf("got %+v", d)
	}
	if d := p.Evaluate(input(nil)); d.Requires != nil || d.Wait != 0 {
		t.Errorf("an allow carries requirements: %+v", d)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"version: 2\nrules: []", "version"},
		{"version: 1\nrules:\n  - id: a\n    when: 'true'\n    decision: maybe", "decision"},
		{"version: 1\nrules:\n  - id: a\n    when: 'args.x >'\n    decision: deny", `rule "a": when`},
		{"version: 1\nrules:\n  - id: a\n    when: '1 + 2'\n    decision: deny", "not a bool"},
		{"version: 1\nrules:\n  - id: a\n    when: 'nosuchvar'\n    decision: deny", "undeclared"},
		{"version: 1\nrules:\n  - id: a\n    when: 'true'\n    decision: deny\n  - id: a\n    when: 'true'\n    decision: deny", "twice"},
		{"version: 1\nrules:\n  - id: Bad Id\n    when: 'true'\n    decision: deny", "id"},
		{"version: 1\nrules:\n  - id: a\n    when: 'true'\n    decision: deny\n    approvers: 2", "approve only"},
		{"version: 1\nrules:\n  - id: a\n    when: ''\n    decision: deny", "condition is required"},
		{"version: 1\nrules:\n  - id: a\n    when: 'true'\n    decision: approve\n    wait: soon", "duration"},
		{"version: 1\nrulez: []", "not found"},
		{"version: 1\nversion: 1\nrules: []", "already defined"},
		{"version: 1\nrules: []\n---\nversion: 1", "one document"},
		{"version: 1\napproval: {at_score: 101}\nrules: []", "at_score"},
		// A misspelt field of a declared variable is a compile error, not a
		// rule that fails every evaluation (and holds or denies every call).
		{"version: 1\nrules:\n  - id: a\n    when: 'tool.nme == \"fin.pay\"'\n    decision: deny", "undefined field 'nme'"},
		{"version: 1\nrules:\n  - id: a\n    when: 'principal.usr == \"bob\"'\n    decision: deny", "undefined field 'usr'"},
		{"version: 1\nrules:\n  - id: a\n    when: 'principal.service && session.clases.size() > 0'\n    decision: deny", "undefined field 'clases'"},
		{"version: 1\nrules:\n  - id: a\n    when: 'tool.labels.egress'\n    decision: deny", "undefined field 'labels'"},
		{"version: 1\nrules:\n  - id: a\n    when: 'has(tool.egres)'\n    decision: deny", "undefined field 'egres'"},
		{"version: 1\nrules:\n  - id: a\n    when: 'tool.version == \"2\"'\n    decision: deny", "no matching overload"},
	} {
		_, err := Parse([]byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.src, err, c.want)
		}
	}
}

// A condition that would run away is stopped by the cost limit, and the
// rule holds the call rather than letting it through.
func TestCostLimit(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - id: heavy
    when: args.xs.all(a, args.xs.all(b, args.xs.all(c, a + b + c >= 0)))
    decision: allow
`)
	xs := make([]any, 300)
	for i := range xs {
		xs[i] = json.Number("1")
	}
	d := p.Evaluate(input(func(in *Input) { in.Args = map[string]any{"xs": xs} }))
	if d.Effect != Approve || !slices.Equal(d.Reasons, []string{"rule-error:heavy"}) {
		t.Errorf("got %+v", d)
	}
}

func TestPolicyTestsReportFailures(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - id: no-pay
    when: tool.name == "fin.pay"
    decision: deny
tests:
  - name: wrong expectation
    principal: {user: a}
    tool: {name: fin.pay}
    expect: {decision: allow, reasons: [x], score: 3}
  - name: right
    principal: {user: a}
    tool: {name: fin.pay}
    expect: {decision: deny, reasons: [no-pay]}
`)
	res, err := p.RunTests()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Passed || len(res[0].Problems) != 3 || !res[1].Passed {
		t.Errorf("%+v", res)
	}
}

func TestLabelsValidate(t *testing.T) {
	ok := Labels{DataClasses: []string{"pii", "financial", "pii"}, Risk: "high", Owner: "Payments team", RequireApproval: true, Approvers: 2}
	if err := ok.Validate(); err != nil || !slices.Equal(ok.DataClasses, []string{"financial", "pii"}) {
		t.Errorf("%v %v", err, ok.DataClasses)
	}
	for _, l := range []Labels{
		{DataClasses: []string{"PII"}}, {Risk: "extreme"}, {Approvers: 2}, {RequireApproval: true, Approvers: 11},
		{Owner: "<script>"},
	} {
		if l.Validate() == nil {
			t.Errorf("accepted %+v", l)
		}
	}
}

// Evaluating the default policy: microseconds per call, no database.
func BenchmarkEvaluate(b *testing.B) {
	p := mustParse(b, string(DefaultSource()))
	in := input(func(in *Input) {
		in.Tool.Labels = &Labels{DataClasses: []string{"financial"}, Irreversible: true}
		in.Args = map[string]any{"amount": json.Number("25000"), "to": "ACME"}
		in.Touched = map[string]time.Time{"pii": in.Now.Add(-time.Minute)}
	})
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Evaluate(in); d.Effect != Approve {
			b.Fatal(d)
		}
	}
}

// Policy documents come from admins over the API: whatever the text,
// Parse answers with a policy or an error, and a policy that parses
// evaluates any input without panicking and decides something valid.
func FuzzParse(f *testing.F) {
	f.Add(string(DefaultSource()))
	f.Add(ruleDoc)
	f.Add("version: 1\nrules:\n  - id: a\n    when: args.x.y.z > 1 || size(args.l) > 2\n    decision: approve\n")
	f.Add("version: 1\nsession: {window: 1h}\napproval: {at_score: 50}\nrules: []\ntests:\n  - principal: {user: a}\n    tool: {name: t}\n    expect: {decision: allow}\n")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Parse([]byte(src))
		if err != nil {
			return
		}
		p.RunTests()
		for _, in := range []Input{input(nil), {Granted: true, Args: map[string]any{"x": []any{json.Number("1e400"), nil, "s"}}}} {
			d := p.Evaluate(in)
			if d.Effect != Allow && d.Effect != Approve && d.Effect != Deny || d.Score < 0 || d.Score > 100 || len(d.Reasons) == 0 {
				t.Fatalf("decision %+v", d)
			}
		}
	})
}

// upstream_requests rules: deny beats allow, no match leaves it to the
// labels (""), a rule that fails to evaluate denies, and call rules cannot
// read request (it is not theirs).
func TestDecideRequest(t *testing.T) {
	p, err := Parse([]byte(`version: 1
rules: []
upstream_requests:
  - id: sso
    when: 'request.mode == "url" && request.url_host == "sso.example.com"'
    decision: allow
  - id: no-bots
    when: 'principal.service && request.kind == "sampling"'
    decision: deny
  - id: broken
    when: 'request.kind == "sampling" && args.x > 1'
    decision: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name           string
		in             RequestInput
		effect, reason string
	}{
		{"allowed host", RequestInput{Kind: "elicitation", Mode: "url", URLHost: "sso.example.com"}, "allow", "sso"},
		{"other host", RequestInput{Kind: "elicitation", Mode: "url", URLHost: "evil.test"}, "", ""},
		{"form", RequestInput{Kind: "elicitation", Mode: "form"}, "", ""},
		{"service sampling", RequestInput{Input: Input{Service: true}, Kind: "sampling"}, "deny", "no-bots"},
		{"rule error", RequestInput{Kind: "sampling"}, "deny", "rule-error:broken"},
	} {
		effect, reason := p.DecideRequest(c.in)
		if string(effect) != c.effect || reason != c.reason {
			t.Errorf("%s: %q %q, want %q %q", c.name, effect, reason, c.effect, c.reason)
		}
	}
	if _, err := Parse([]byte("version: 1\nrules:\n  - id: x\n    when: 'request.kind == \"sampling\"'\n    decision: deny\n")); err == nil {
		t.Error("a call rule compiled with request")
	}
	for _, typo := range []string{"request.knd == 'sampling'", "tool.nme == 'x'"} {
		if _, err := Parse([]byte("version: 1\nrules: []\nupstream_requests:\n  - id: x\n    when: \"" + typo + "\"\n    decision: allow\n")); err == nil {
			t.Errorf("%s compiled", typo)
		}
	}
	if _, err := Parse([]byte("version: 1\nrules: []\nupstream_requests:\n  - id: x\n    when: 'true'\n    decision: approve\n")); err == nil {
		t.Error("an upstream_requests rule may approve")
	}
	if e, _ := mustDefault(t).DecideRequest(RequestInput{Kind: "sampling"}); e != "" {
		t.Errorf("the default policy decides questions: %q", e)
	}
}

func mustDefault(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse(DefaultSource())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
