package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/policy"
)

// scrape reads the metrics endpoint: every ostiary_ series, as the text
// exposition format prints it (name{labels sorted}), to its value; and
// the body itself.
func scrape(t *testing.T, s *apptest.Server) (map[string]float64, string) {
	t.Helper()
	url := s.App.MetricsURL()
	if url == "" {
		t.Fatal("metrics are not served")
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "ostiary_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, string(b)
}

// delta is after minus before for each series in want, compared.
func checkDeltas(t *testing.T, before, after map[string]float64, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if got := after[k] - before[k]; got != w {
			t.Errorf("%s moved by %v, want %v (before %v, after %v)", k, got, w, before[k], after[k])
		}
	}
}

func toolCall(t *testing.T, s *apptest.Server, key, tool, args string) apptest.Response {
	t.Helper()
	return rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":`+args+`,`+modern+`}}`,
		modernHeaders("tools/call", tool))
}

// Metrics move with traffic, exactly: a scrape before and after a known
// sequence — an allowed call, a call held for approval, approved by
// another person and then made, a call the caller may not make, and
// calls past the key's rate limit — differs by exactly that sequence.
func TestMetricsMoveWithTraffic(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.RateKey = config.Rate{Per: 1.0 / 3600, Burst: 4} // the test clock never refills it
	})
	up := apptest.NewUpstream(t, s, "fin", true)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*"}, "bob", false)
	setup(t, s, "approver", []string{"approve:fin.*"}, "carol", false)
	setup(t, s, "", nil, "eve", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	carol, _ := newKey(t, s, map[string]any{"user": "carol"})
	eve, _ := newKey(t, s, map[string]any{"user": "eve"})
	label(t, s, "fin.pay", policy.Labels{DataClasses: []string{"financial"}, Irreversible: true})

	before, _ := scrape(t, s)
	mustStatus(t, toolCall(t, s, bob, "fin.lookup", `{"id":"1"}`), http.StatusOK) // allowed
	r := toolCall(t, s, bob, "fin.pay", `{"amount":120,"to":"ACME"}`)             // held
	id := approvalIDRE.FindString(string(r.Body))
	if id == "" {
		t.Fatalf("the payment was not held: %s", r.Body)
	}
	if mid, _ := scrape(t, s); mid["ostiary_approvals_pending"] != 1 {
		t.Errorf("approvals pending while held: %v", mid["ostiary_approvals_pending"])
	}
	mustStatus(t, s.Do("POST", "/api/v1/approvals/"+id+"/approve", carol, map[string]any{"reason": "invoice checked"}), http.StatusOK)
	if r := toolCall(t, s, bob, "fin.pay", `{"amount":120,"to":"ACME"}`); r.Status != http.StatusOK || strings.Contains(string(r.Body), `"isError":true`) {
		t.Fatalf("the approved payment: %d %s", r.Status, r.Body)
	}
	for i := range 5 { // eve may call nothing: four refusals, then her key's rate limit
		want := http.StatusBadRequest // "unknown tool", as for any tool one may not call
		if i == 4 {
			want = http.StatusTooManyRequests
		}
		mustStatus(t, toolCall(t, s, eve, "fin.lookup", `{"id":"1"}`), want)
	}
	// A 2025-era client opens a session.
	legacy := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	if r := rpc(t, s, carol, legacy, nil); r.Status != http.StatusOK || r.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	after, _ := scrape(t, s)

	checkDeltas(t, before, after, map[string]float64{
		`ostiary_mcp_requests_total{era="2025",method="initialize"}`: 1,
		`ostiary_sessions_open`: 1,
		`ostiary_mcp_requests_total{era="2026-07-28",method="tools/call"}`:          8,
		`ostiary_decisions_total{effect="allow",reason="default-allow"}`:            1,
		`ostiary_decisions_total{effect="approve",reason="irreversible-financial"}`: 2,
		`ostiary_decisions_total{effect="deny",reason="tool-not-permitted"}`:        4,
		`ostiary_rate_limited_total{limit="key"}`:                                   1,
		`ostiary_risk_score_count`:                                                  3,
		`ostiary_approval_decision_seconds_count{result="approved"}`:                1,
		`ostiary_upstream_request_seconds_count{upstream="fin"}`:                    2,
		`ostiary_upstream_errors_total{upstream="fin"}`:                             0,
		`ostiary_approvals_pending`:                                                 0,
		`ostiary_kill_switches_active`:                                              0,
		`ostiary_upstream_circuit_open{upstream="fin"}`:                             0,
	})
	// Every record written between the scrapes went through a batch.
	if after["ostiary_audit_batch_records_count"] <= before["ostiary_audit_batch_records_count"] ||
		after["ostiary_audit_batch_records_sum"]-before["ostiary_audit_batch_records_sum"] < 8 ||
		after["ostiary_audit_commit_seconds_count"] != after["ostiary_audit_batch_records_count"] {
		t.Errorf("audit batches: before %v/%v, after %v/%v", before["ostiary_audit_batch_records_count"], before["ostiary_audit_batch_records_sum"],
			after["ostiary_audit_batch_records_count"], after["ostiary_audit_batch_records_sum"])
	}
	for _, k := range []string{"ostiary_audit_queue_records", "ostiary_sessions_open", "ostiary_streams_open"} {
		if _, ok := after[k]; !ok {
			t.Errorf("%s is not exported", k)
		}
	}

	// A kill switch shows at once.
	mustStatus(t, s.Do("POST", "/api/v1/killswitches", s.AdminKey, map[string]any{"kind": "tool", "target": "fin.pay", "reason": "incident 7"}), http.StatusCreated)
	if m, _ := scrape(t, s); m["ostiary_kill_switches_active"] != 1 {
		t.Errorf("kill switches active: %v", m["ostiary_kill_switches_active"])
	}
}

var seriesRE = regexp.MustCompile(`^(ostiary_[a-z_]+)(\{.*\})?$`)

// Cardinality is bounded: many users, keys and distinct argument values
// add no series (labels carry no user, key or argument), and no user
// name, key, argument value or secret appears in the metrics at all.
func TestMetricsCardinalityAndSecrets(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.MetricsListen = "127.0.0.1:0" })
	up := apptest.NewUpstream(t, s, "fin", true)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "caller", "grants": []string{"invoke:fin.*"}}), http.StatusCreated)
	user := func(i int) (string, string) {
		name := fmt.Sprintf("user-%02d-zq", i)
		mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": name, "roles": []string{"caller"}}), http.StatusCreated)
		key, _ := newKey(t, s, map[string]any{"user": name})
		return name, key
	}
	_, key0 := user(0)
	mustStatus(t, toolCall(t, s, key0, "fin.lookup", `{"id":"warm-up"}`), http.StatusOK)
	mustStatus(t, toolCall(t, s, key0, "fin.nonexistent", `{}`), http.StatusBadRequest)
	warm, _ := scrape(t, s)

	var names, keys []string
	for i := 1; i <= 20; i++ {
		name, key := user(i)
		names, keys = append(names, name), append(keys, key)
		arg := fmt.Sprintf("ARGVALUE-%d-sk_live_%032d", i, i)
		mustStatus(t, toolCall(t, s, key, "fin.lookup", `{"id":"`+arg+`"}`), http.StatusOK)
		mustStatus(t, toolCall(t, s, key, fmt.Sprintf("fin.made-up-%d", i), `{}`), http.StatusBadRequest) // unknown tool names
	}
	after, body := scrape(t, s)
	if got, want := seriesOf(after), seriesOf(warm); !slices.Equal(got, want) {
		t.Errorf("20 users added series:\n got  %v\n want %v", got, want)
	}
	if d := after[`ostiary_decisions_total{effect="allow",reason="default-allow"}`] - warm[`ostiary_decisions_total{effect="allow",reason="default-allow"}`]; d != 20 {
		t.Errorf("allowed decisions moved by %v, want 20", d)
	}
	for _, secret := range append(append(names, keys...), "ARGVALUE", "sk_live", "made-up", s.AdminKey, "warm-up") {
		if strings.Contains(body, secret) {
			t.Errorf("the metrics show %q", secret)
		}
	}
}

// seriesOf is the sorted series names (with labels) of the ostiary_
// metrics, histogram buckets aside.
func seriesOf(m map[string]float64) []string {
	var out []string
	for k := range m {
		if seriesRE.MatchString(k) && !strings.Contains(k, "_bucket") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// The metrics listener serves /metrics and nothing else, and only on the
// configured loopback address without TLS.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.MetricsListen = "127.0.0.1:0" })
	base := strings.TrimSuffix(s.App.MetricsURL(), "/metrics")
	for _, p := range []string{"/", "/mcp", "/api/v1/users", "/readyz", "/metrics/../api/v1/users"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the metrics listener: %d", p, resp.StatusCode)
		}
	}
	if resp, err := http.Post(s.App.MetricsURL(), "text/plain", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("POST /metrics answered 200")
		}
	}
	// The main listener does not serve them.
	if r := s.Do("GET", "/metrics", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("/metrics on the main listener: %d", r.Status)
	}
	for _, bad := range []string{"0.0.0.0:9464", "10.0.0.1:9464", "example.com:9464", "9464"} {
		c := config.Default()
		c.DataDir, c.MetricsListen = t.TempDir(), bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--metrics-listen") {
			t.Errorf("--metrics-listen %s without TLS: %v", bad, err)
		}
	}
	// Off by default: no listener.
	if u := apptest.Start(t).App.MetricsURL(); u != "" {
		t.Errorf("metrics served without --metrics-listen at %s", u)
	}
}
