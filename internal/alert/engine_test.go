package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/testutil"
)

const spikeRules = `version: 1
default_route: security
escalate_to: oncall
routes:
  - {name: security, webhook: "http://127.0.0.1:9/a"}
  - {name: oncall, webhook: "http://127.0.0.1:9/b"}
rules:
  - {name: denials-by-tool, kind: denial-spike, by: tool, window: 5m, baseline: 1h, factor: 3, min: 10}
  - {name: denials-by-user, kind: denial-spike, by: user, window: 5m, baseline: 1h, factor: 3, min: 10}
  - {name: denials-by-upstream, kind: denial-spike, by: upstream, window: 5m, baseline: 1h, factor: 3, min: 10}
  - {name: failures, kind: exception-spike, by: tool, window: 5m, baseline: 1h, factor: 3, min: 10}
  - {name: volume, kind: volume, window: 5m, baseline: 1h, factor: 3, min: 20}
`

func mustParse(t *testing.T, src string) *Document {
	t.Helper()
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func call(at time.Time, user, key, tool string, outcome audit.Outcome) *audit.Record {
	return &audit.Record{Time: at, Event: eventToolCall, Outcome: outcome, Actor: user, KeyID: key, Target: "tool:" + tool,
		Detail: map[string]any{"upstream": "shop"}}
}

func result(at time.Time, user, tool string, outcome audit.Outcome) *audit.Record {
	return &audit.Record{Time: at, Event: eventToolResult, Outcome: outcome, Actor: user, Target: "tool:" + tool, Detail: map[string]any{"upstream": "shop"}}
}

func rulesOf(fs []Finding) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range fs {
		m[f.Rule] = f
	}
	return m
}

// Every spike rule stays quiet over three hours of steady traffic (one
// denial, one failure and two calls per key every 30 s: 10, 10 and 20 per
// window, the minimum, but exactly what the baseline predicts), and each
// fires on a burst against that same baseline.
func TestSpikeRulesFireOnBurstNotOnSteadyTraffic(t *testing.T) {
	clock := testutil.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	e := NewEngine(mustParse(t, spikeRules), nil)
	steady := func(d time.Duration) []Finding {
		var out []Finding
		for end := clock.Now().Add(d); clock.Now().Before(end); clock.Advance(30 * time.Second) {
			now := clock.Now()
			for _, r := range []*audit.Record{call(now, "alice", "k1", "shop.refund", audit.Denied), result(now, "alice", "shop.refund", audit.Failed),
				call(now, "alice", "k1", "shop.list", audit.Success)} {
				out = append(out, e.Observe(r)...)
			}
		}
		return out
	}
	if fs := steady(3 * time.Hour); len(fs) != 0 {
		t.Fatalf("steady traffic raised %d alerts, first %+v", len(fs), fs[0])
	}
	// A burst: 100 denials and failures in 100 s.
	var fs []Finding
	for i := range 100 {
		now := clock.Now().Add(time.Duration(i) * time.Second)
		fs = append(fs, e.Observe(call(now, "alice", "k1", "shop.refund", audit.Denied))...)
		fs = append(fs, e.Observe(result(now, "alice", "shop.refund", audit.Failed))...)
	}
	got := rulesOf(fs)
	for _, want := range []string{"denials-by-tool", "denials-by-user", "denials-by-upstream", "failures", "volume"} {
		f, ok := got[want]
		if !ok {
			t.Errorf("%s did not fire on the burst (fired: %v)", want, got)
			continue
		}
		if f.Facts["count"] == nil || f.Summary == "" {
			t.Errorf("%s: %+v", want, f)
		}
	}
	if got["denials-by-tool"].Subject != "tool:shop.refund" || got["denials-by-tool"].Tool != "shop.refund" ||
		got["denials-by-user"].Subject != "user:alice" || got["denials-by-upstream"].Subject != "upstream:shop" || got["volume"].Subject != "key:k1" {
		t.Errorf("subjects: %+v", got)
	}
	// One alert per rule and subject per cooldown: the burst fired once each.
	if len(fs) != 5 {
		t.Errorf("%d findings for one burst, want 5: %+v", len(fs), fs)
	}
}

// A spike rule says nothing while it learns its first baseline (its memory
// starts empty at every start), then a subject it never saw needs min
// events in the window.
func TestSpikeRuleLearnsFirst(t *testing.T) {
	clock := testutil.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	e := NewEngine(mustParse(t, spikeRules), nil)
	for i := range 30 {
		if fs := e.Observe(call(clock.Now().Add(time.Duration(i)*time.Second), "bob", "k2", "shop.refund", audit.Denied)); len(fs) != 0 {
			t.Fatalf("fired while learning: %+v", fs)
		}
	}
	clock.Advance(2 * time.Hour)
	var fs []Finding
	for i := range 9 {
		fs = append(fs, e.Observe(call(clock.Now().Add(time.Duration(i)*time.Second), "carol", "k3", "shop.pay", audit.Denied))...)
	}
	if len(fs) != 0 {
		t.Fatalf("9 denials (min 10) fired: %+v", fs)
	}
	fs = e.Observe(call(clock.Now().Add(10*time.Second), "carol", "k3", "shop.pay", audit.Denied))
	if g := rulesOf(fs); g["denials-by-user"].Subject != "user:carol" {
		t.Fatalf("the 10th denial of a new user: %+v", fs)
	}
}

const otherRules = `version: 1
default_route: security
escalate_to: oncall
routes:
  - {name: security, webhook: "http://127.0.0.1:9/a"}
  - {name: oncall, webhook: "http://127.0.0.1:9/b"}
rules:
  - {name: first, kind: first-use, tools: ["shop.*"]}
  - {name: egress, kind: egress}
  - {name: echo, kind: secret-echo}
  - {name: night, kind: off-hours, hours: "08:00-18:00", days: [mon, tue, wed, thu, fri], timezone: Europe/Berlin}
`

func TestFirstUse(t *testing.T) {
	e := NewEngine(mustParse(t, otherRules), nil)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	fs := e.Observe(call(at, "alice", "k1", "shop.refund", audit.Success))
	if len(fs) != 1 || fs[0].Rule != "first" || fs[0].Seen == nil || fs[0].Subject != "user:alice tool:shop.refund" || fs[0].Tool != "shop.refund" {
		t.Fatalf("first call: %+v", fs)
	}
	for _, r := range []*audit.Record{
		call(at.Add(time.Minute), "alice", "k1", "shop.refund", audit.Success), // again
		call(at, "alice", "k1", "shop.pay", audit.Denied),                      // refused: not a use
		call(at, "alice", "k1", "crm.find", audit.Success),                     // outside the rule's tools
	} {
		if fs := e.Observe(r); len(fs) != 0 {
			t.Errorf("%s %s: %+v", r.Target, r.Outcome, fs)
		}
	}
	if fs := e.Observe(call(at, "bob", "k2", "shop.refund", audit.Success)); len(fs) != 1 {
		t.Errorf("another principal's first use: %+v", fs)
	}
	// Known from the store (a previous run): not raised again.
	e2 := NewEngine(mustParse(t, otherRules), nil)
	e2.Remember(SeenKey{"first", "user:bob", "tool:shop.refund"})
	if fs := e2.Observe(call(at, "bob", "k2", "shop.refund", audit.Success)); len(fs) != 0 {
		t.Errorf("remembered pair raised again: %+v", fs)
	}
}

func TestEgressDestination(t *testing.T) {
	e := NewEngine(mustParse(t, otherRules), nil)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	egress := func(hosts ...string) *audit.Record {
		r := call(at, "alice", "k1", "mail.send", audit.Success)
		r.Detail[DetailEgressHosts] = hosts
		return r
	}
	e.Observe(call(at, "alice", "k1", "mail.send", audit.Success)) // its first use, no hosts
	fs := e.Observe(egress("partner.example.com", "evil.example.net"))
	if len(fs) != 2 || fs[0].Subject != "host:partner.example.com" || fs[1].Subject != "host:evil.example.net" || fs[1].Facts["host"] != "evil.example.net" {
		t.Fatalf("new hosts: %+v", fs)
	}
	if fs := e.Observe(egress("partner.example.com")); len(fs) != 0 {
		t.Errorf("a known host: %+v", fs)
	}
	// As read back from the index: []any.
	r := call(at, "bob", "k2", "mail.send", audit.Success)
	r.Detail[DetailEgressHosts] = []any{"third.example.org"}
	if g := rulesOf(e.Observe(r)); g["egress"].Subject != "host:third.example.org" {
		t.Errorf("[]any hosts: %+v", g)
	}
}

func TestSecretEcho(t *testing.T) {
	e := NewEngine(mustParse(t, otherRules), nil)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	r := &audit.Record{Time: at, Event: eventSecretEcho, Outcome: audit.Success, Actor: "alice", Target: "tool:crm.find",
		Detail: map[string]any{"upstream": "crm", "tool": "crm.find", "secrets": []any{map[string]any{"secret": "crm-token", "version": 3}}}}
	fs := e.Observe(r)
	if len(fs) != 1 || fs[0].Rule != "echo" || fs[0].Tool != "crm.find" || fs[0].Facts["secrets"] != 1 {
		t.Fatalf("%+v", fs)
	}
	if strings.Contains(fmt.Sprint(fs[0]), "crm-token") {
		t.Errorf("the alert names the secret: %+v", fs[0])
	}
}

func TestOffHours(t *testing.T) {
	service := func(u string) bool { return u == "robot" }
	e := NewEngine(mustParse(t, otherRules), service)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	monday10 := time.Date(2026, 3, 2, 10, 0, 0, 0, berlin)
	monday3 := time.Date(2026, 3, 2, 3, 0, 0, 0, berlin)
	saturday10 := time.Date(2026, 3, 7, 10, 0, 0, 0, berlin)
	e.Observe(call(monday10.Add(-time.Hour), "robot", "k9", "crm.find", audit.Success)) // its first use
	e.Observe(call(monday10.Add(-time.Hour), "alice", "k1", "crm.find", audit.Success))
	if fs := e.Observe(call(monday10, "robot", "k9", "crm.find", audit.Success)); len(fs) != 0 {
		t.Errorf("in hours: %+v", fs)
	}
	if fs := e.Observe(call(monday3, "alice", "k1", "crm.find", audit.Success)); len(fs) != 0 {
		t.Errorf("a human at night: %+v", fs)
	}
	if fs := e.Observe(call(monday3, "robot", "k9", "crm.find", audit.Success)); len(fs) != 1 || fs[0].Subject != "user:robot" {
		t.Errorf("a service account at 03:00: %+v", fs)
	}
	if fs := e.Observe(call(saturday10, "robot", "k9", "crm.find", audit.Success)); len(fs) != 1 {
		t.Errorf("a service account on Saturday: %+v", fs)
	}
}
