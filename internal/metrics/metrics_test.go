package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A nil *Metrics records nothing and never panics: callers hold one
// unconditionally.
func TestNilRecordsNothing(t *testing.T) {
	var m *Metrics
	m.Request("tools/call", false)
	m.Decision("allow", "default-allow")
	m.Risk(10)
	m.RateLimited(LimitKey)
	m.ApprovalSettled(true, time.Second)
	m.AuditBatch(3, time.Millisecond)
	m.Upstream("fin", time.Millisecond, true)
	m.Observe(Gauges{})
}

// A label fed more distinct values than the cap (a policy with very many
// rule ids, say) stops at the cap: the rest count under "other", and the
// counts add up.
func TestLabelValuesAreCapped(t *testing.T) {
	m := New("test")
	for i := range 3 * maxValues {
		m.Decision("deny", fmt.Sprintf("rule-%d", i))
	}
	if n := testutil.CollectAndCount(m.decisions); n != maxValues+1 {
		t.Errorf("%d series, want %d (the cap and other)", n, maxValues+1)
	}
	if v := testutil.ToFloat64(m.decisions.WithLabelValues("deny", Other)); v != 2*maxValues {
		t.Errorf("other counted %v, want %d", v, 2*maxValues)
	}
	for i := range 3 * maxValues {
		m.Upstream(fmt.Sprintf("up-%d", i), time.Millisecond, i%2 == 0)
	}
	if n := testutil.CollectAndCount(m.upErrors); n != maxValues+1 {
		t.Errorf("%d upstream series, want %d", n, maxValues+1)
	}
}

// Decisions with several reasons count once under each; the exposition
// follows Prometheus' naming rules (the linter of promtool).
func TestDecisionReasonsAndNames(t *testing.T) {
	m := New("test")
	m.Decision("approve", "large-irreversible-payment", "irreversible-financial")
	m.Request("tools/call", true)
	m.Observe(Gauges{AuditQueue: func() int { return 7 }, KillSwitches: func() int { return 2 }, ApprovalsPending: func() (int, bool) { return 0, false },
		Circuits: func(fn func(string, bool)) { fn("fin", true); fn("crm", false) }})
	want := `
# HELP ostiary_decisions_total Governance decisions, by effect (allow, approve, deny) and reason code; a decision with several reasons counts once under each.
# TYPE ostiary_decisions_total counter
ostiary_decisions_total{effect="approve",reason="irreversible-financial"} 1
ostiary_decisions_total{effect="approve",reason="large-irreversible-payment"} 1
# HELP ostiary_upstream_circuit_open 1 while the upstream's circuit breaker is open (calls refused at once), else 0.
# TYPE ostiary_upstream_circuit_open gauge
ostiary_upstream_circuit_open{upstream="crm"} 0
ostiary_upstream_circuit_open{upstream="fin"} 1
# HELP ostiary_audit_queue_records Records queued for the audit writer, not yet in a batch.
# TYPE ostiary_audit_queue_records gauge
ostiary_audit_queue_records 7
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "ostiary_decisions_total", "ostiary_upstream_circuit_open", "ostiary_audit_queue_records"); err != nil {
		t.Error(err)
	}
	// A store that does not answer leaves the pending count out, rather
	// than reporting 0.
	if n, err := testutil.GatherAndCount(m.reg, "ostiary_approvals_pending"); err != nil || n != 0 {
		t.Errorf("pending approvals without an answer: %d series (%v)", n, err)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "ostiary_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// What one governed call costs in metrics: each is a map read and an
// atomic add, no allocation.
func TestHotPathAllocatesNothing(t *testing.T) {
	m := New("test")
	reasons := []string{"default-allow"}
	m.Decision("allow", reasons...)
	m.Request("tools/call", false)
	m.Upstream("fin", time.Millisecond, false)
	if n := testing.AllocsPerRun(1000, func() {
		m.Request("tools/call", false)
		m.Decision("allow", reasons...)
		m.Risk(10)
		m.Upstream("fin", time.Millisecond, false)
	}); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

func BenchmarkCallMetrics(b *testing.B) {
	m := New("test")
	reasons := []string{"default-allow"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("tools/call", false)
			m.Decision("allow", reasons...)
			m.Risk(10)
			m.Upstream("fin", time.Millisecond, false)
		}
	})
}
