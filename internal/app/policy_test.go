package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/policy"
)

func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// policySetup: an upstream "fin" and alice, who may invoke all of it.
func policySetup(t *testing.T) (*apptest.Server, *apptest.Upstream, *mcp.ClientSession) {
	t.Helper()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "fin-user", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, up, cs
}

func label(t *testing.T, s *apptest.Server, tool string, l policy.Labels) {
	t.Helper()
	mustStatus(t, s.Do("POST", "/api/v1/tools/labels", s.AdminKey, adminapi.ToolLabels{Tool: tool, Labels: &l}), http.StatusOK)
}

func callRecord(t *testing.T, s *apptest.Server, tool string) audit.Record {
	t.Helper()
	recs := records(t, s, audit.Query{Event: govern.EventToolCall, Target: "tool:" + tool, Limit: 1})
	if len(recs) == 0 {
		t.Fatalf("no decision record for %s", tool)
	}
	return recs[0]
}

// Labels feed the default policy: a large irreversible payment is held and
// never reaches the upstream; the decision record carries the score, the
// reasons and the policy version.
func TestPolicyLabelsHoldPayment(t *testing.T) {
	t.Parallel()
	s, up, alice := policySetup(t)
	ctx := context.Background()
	pay := func(amount float64) *mcp.CallToolResult {
		res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": amount, "to": "ACME"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := pay(25000); res.IsError { // unlabelled, human caller: allowed
		t.Fatalf("unlabelled pay: %s", resultText(res))
	}
	label(t, s, "fin.pay", policy.Labels{DataClasses: []string{"financial"}, Irreversible: true, Owner: "Payments"})
	before := len(up.Calls())
	res := pay(25000)
	if !res.IsError || !strings.Contains(resultText(res), "needs approval") || len(up.Calls()) != before {
		t.Fatalf("a labelled large payment was not held: %s (upstream calls %d → %d)", resultText(res), before, len(up.Calls()))
	}
	r := callRecord(t, s, "fin.pay")
	if r.Outcome != audit.Denied || r.Reason != govern.ReasonHeld || r.Detail["decision"] != "approve" || fmt.Sprint(r.Detail["risk_score"]) != "85" ||
		fmt.Sprint(r.Detail["policy_version"]) != "1" || !slices.Contains(anyStrings(r.Detail["reasons"]), "large-irreversible-payment") {
		t.Errorf("decision record: %+v", r)
	}
	var tl adminapi.ToolList
	s.Do("GET", "/api/v1/tools", s.AdminKey, nil).JSON(t, &tl)
	for _, tool := range tl.Tools {
		if tool.Name == "fin.pay" && (tool.Labels == nil || tool.Labels.Owner != "Payments") {
			t.Errorf("tools list: %+v", tool)
		}
		if tool.Name == "fin.lookup" && (tool.Labels != nil || !tool.Hints.ReadOnly) {
			t.Errorf("tools list: %+v", tool)
		}
	}
	// Clearing the labels brings the hints back.
	mustStatus(t, s.Do("POST", "/api/v1/tools/labels", s.AdminKey, map[string]any{"tool": "fin.pay", "labels": nil}), http.StatusOK)
	if res := pay(25000); res.IsError {
		t.Errorf("after clearing labels: %s", resultText(res))
	}
	// Bad labels are refused, on record.
	mustStatus(t, s.Do("POST", "/api/v1/tools/labels", s.AdminKey, adminapi.ToolLabels{Tool: "fin.pay", Labels: &policy.Labels{Risk: "extreme"}}), http.StatusBadRequest)
	mustStatus(t, s.Do("POST", "/api/v1/tools/labels", s.AdminKey, adminapi.ToolLabels{Tool: "fin.nope", Labels: &policy.Labels{}}), http.StatusNotFound)
	if recs := records(t, s, audit.Query{Event: "tool-labels-set"}); len(recs) != 4 {
		t.Errorf("label records: %d", len(recs))
	}
}

func anyStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

// A new policy takes effect on the next call; a policy failing its own
// tests is refused and changes nothing; history and show see every version.
func TestPolicySetDenyAndHistory(t *testing.T) {
	t.Parallel()
	s, up, alice := policySetup(t)
	ctx := context.Background()
	deny := `version: 1
description: no deletions
rules:
  - id: no-delete-all
    when: tool.name.endsWith(".delete_all")
    decision: deny
    message: Bulk deletion is switched off.
tests:
  - name: delete_all is denied
    principal: {user: alice}
    tool: {name: fin.delete_all}
    expect: {decision: deny, reasons: [no-delete-all]}
`
	var set adminapi.PolicySet
	r := s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: deny})
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &set)
	if set.Version.Version != 2 || len(set.Tests) != 1 || !set.Tests[0].Passed {
		t.Fatalf("set: %s", r.Body)
	}
	before := len(up.Calls())
	res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.delete_all"})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "Bulk deletion is switched off") || len(up.Calls()) != before {
		t.Fatalf("denied call: %+v %v", res, err)
	}
	rec := callRecord(t, s, "fin.delete_all")
	if rec.Reason != govern.ReasonPolicyDeny || fmt.Sprint(rec.Detail["policy_version"]) != "2" {
		t.Errorf("record: %+v", rec)
	}
	// A policy whose tests fail is not set.
	bad := strings.Replace(deny, "expect: {decision: deny", "expect: {decision: allow", 1)
	r = s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: bad})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "fails 1 of its 1 tests") {
		t.Errorf("failing policy: %d %s", r.Status, r.Body)
	}
	mustStatus(t, s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: "version: 1\nrules:\n  - id: x\n    when: 'args.'\n    decision: deny\n"}), http.StatusBadRequest)
	// Nobody without manage-policy sets one; an auditor may read.
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	mustStatus(t, s.Do("PUT", "/api/v1/policy", aliceKey, adminapi.SetPolicy{Source: deny}), http.StatusForbidden)
	mustStatus(t, s.Do("GET", "/api/v1/policy", aliceKey, nil), http.StatusForbidden)
	var h adminapi.PolicyHistory
	s.Do("GET", "/api/v1/policy/history", s.AdminKey, nil).JSON(t, &h)
	if len(h.Versions) != 2 || h.Versions[0].Version != 2 || h.Versions[1].CreatedBy != "system" || h.Versions[0].Source != "" {
		t.Errorf("history: %+v", h)
	}
	var v policy.Version
	s.Do("GET", "/api/v1/policy?version=1", s.AdminKey, nil).JSON(t, &v)
	if v.Source != string(policy.DefaultSource()) {
		t.Errorf("version 1 is not the default policy: %q", v.Source[:min(80, len(v.Source))])
	}
	if recs := records(t, s, audit.Query{Event: policy.EventSet}); len(recs) != 5 { // system's, admin's, two refused, alice's refusal
		t.Errorf("policy-set records: %d", len(recs))
	}
	// The policy in force survives a restart.
	s.Stop()
	s.Restart(nil)
	cs, err := s.Client(t, aliceKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fin.delete_all"}); err != nil || !res.IsError {
		t.Errorf("after restart: %+v %v", res, err)
	}
}

// The session-taint rule end to end: after alice reads personal data, an
// egress tool needs approval.
func TestPolicySessionTaint(t *testing.T) {
	t.Parallel()
	s, up, alice := policySetup(t)
	ctx := context.Background()
	label(t, s, "fin.lookup", policy.Labels{DataClasses: []string{"pii"}})
	label(t, s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, Egress: true})
	send := func() *mcp.CallToolResult {
		res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 1, "to": "x"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send(); res.IsError {
		t.Fatalf("egress before any sensitive read: %s", resultText(res))
	}
	if res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-7"}}); err != nil || res.IsError {
		t.Fatal(res, err)
	}
	before := len(up.Calls())
	res := send()
	if !res.IsError || !strings.Contains(resultText(res), "egress-after-sensitive-read") || len(up.Calls()) != before {
		t.Errorf("egress after a pii read: %s", resultText(res))
	}
	// The taint is the user's, not the session's: another key of alice's
	// in a new session is held too.
	key2, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs2, err := s.Client(t, key2, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := cs2.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 1, "to": "x"}}); res == nil || !res.IsError {
		t.Errorf("a fresh session washed the taint away: %+v", res)
	}
}

// Explain shows the decision without calling anything.
func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	s, up, _ := policySetup(t)
	label(t, s, "fin.pay", policy.Labels{DataClasses: []string{"financial"}, Irreversible: true})
	before := len(up.Calls())
	var x adminapi.ExplainAnswer
	r := s.Do("POST", "/api/v1/policy/explain", s.AdminKey, map[string]any{"user": "alice", "tool": "fin.pay", "args": map[string]any{"amount": 500, "to": "x"}})
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &x)
	if x.Decision.Effect != policy.Approve || x.Decision.Score != 65 || !slices.Equal(x.Decision.Reasons, []string{"irreversible-financial"}) ||
		len(x.Decision.Requires) != 1 || x.Problem != "" || len(up.Calls()) != before {
		t.Errorf("explain: %s", r.Body)
	}
	setup(t, s, "", nil, "mallory", false)
	s.Do("POST", "/api/v1/policy/explain", s.AdminKey, map[string]any{"user": "mallory", "tool": "fin.pay", "args": map[string]any{}}).JSON(t, &x)
	if x.Decision.Effect != policy.Deny || x.Decision.Reasons[0] != policy.ReasonNoGrant || x.Problem == "" {
		t.Errorf("explain for a user without the grant: %+v", x)
	}
	mustStatus(t, s.Do("POST", "/api/v1/policy/explain", s.AdminKey, map[string]any{"user": "nobody", "tool": "fin.pay"}), http.StatusNotFound)
	mustStatus(t, s.Do("POST", "/api/v1/policy/explain", s.AdminKey, map[string]any{"user": "alice", "tool": "fin.pay", "args": []int{1}}), http.StatusBadRequest)
	if recs := records(t, s, audit.Query{Event: policy.EventExplain}); len(recs) != 4 {
		t.Errorf("explain records: %d", len(recs))
	}
}
