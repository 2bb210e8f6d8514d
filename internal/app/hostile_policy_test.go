package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/cli"
	"github.com/ostiary/ostiary/internal/policy"
)

// Hostile tests of the policy surface (issue "Trust at the edges", §8):
//
//	attack                                              observable that holds
//	PUT /api/v1/policy with `tool.nme == "fin.pay"`     400 naming 'nme'; version 1 still in force; refusal on record
//	ostiary policy test FILE with that typo             exit 1, the CEL error on stderr
//	POST /api/v1/policy/rollback {"version": 99}        404; refusal on record
//	POST /api/v1/policy/rollback by a non-manager       403; refusal on record; policy unchanged
//	ostiary policy rollback 1 after a lock-out policy   version 3 = version 1's document; the call runs; policy-rolled-back record

// runCLI runs the ostiary command line in-process against s.
func runCLI(s *apptest.Server, key string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": key}
	code = cli.Run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

const typoPolicy = `version: 1
description: stop payments
rules:
  - id: no-pay
    when: tool.nme == "fin.pay"
    decision: deny
`

// PUT /api/v1/policy {"source": "...when: tool.nme == \"fin.pay\"..."}: a
// misspelt field used to be accepted and then fail every evaluation
// (rule-error on every call). It is refused at set and at test.
func TestHostilePolicyTypoRefused(t *testing.T) {
	t.Parallel()
	s, up, alice := policySetup(t)
	r := s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: typoPolicy})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "undefined field 'nme'") {
		t.Fatalf("typo policy set: %d %s", r.Status, r.Body)
	}
	var v policy.Version
	s.Do("GET", "/api/v1/policy", s.AdminKey, nil).JSON(t, &v)
	if v.Version != 1 {
		t.Errorf("the typo policy changed the version in force to %d", v.Version)
	}
	if recs := records(t, s, audit.Query{Event: policy.EventSet, Outcome: audit.Failed, Limit: 1}); len(recs) != 1 || recs[0].Reason != "invalid-request" {
		t.Errorf("no refused policy-set on record: %+v", recs)
	}
	// Calls go on being decided by the policy in force, not rule-error.
	res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-1"}})
	if err != nil || res.IsError || len(up.Calls()) != 1 {
		t.Fatalf("call after the refused policy: %+v %v", res, err)
	}
	if rec := callRecord(t, s, "fin.lookup"); strings.Contains(fmt.Sprint(rec.Detail["reasons"]), policy.ReasonRuleErrorPrefix) {
		t.Errorf("rule-error decided the call: %+v", rec.Detail)
	}

	// ostiary policy test FILE: exit 1 with the CEL error.
	file := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(file, []byte(typoPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(s, s.AdminKey, "policy", "test", file); code != cli.ExitError || !strings.Contains(stderr, "undefined field 'nme'") {
		t.Errorf("policy test of the typo: exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr := runCLI(s, s.AdminKey, "policy", "set", file); code != cli.ExitError || !strings.Contains(stderr, "undefined field 'nme'") {
		t.Errorf("policy set of the typo: exit %d, stderr %s", code, stderr)
	}
}

const lockOut = `version: 1
description: lock everything
rules:
  - id: lock
    when: tool.name.startsWith("fin.")
    decision: deny
tests:
  - principal: {user: alice}
    tool: {name: fin.lookup}
    expect: {decision: deny}
`

// A policy that locks everyone out is set; `policy rollback 1` puts the
// default back in force as a new version (history append-only), on
// record; rollback to a version that does not exist is 404, and someone
// without manage-policy is refused with 403 — each refusal on record.
func TestHostilePolicyRollback(t *testing.T) {
	t.Parallel()
	s, up, alice := policySetup(t)
	ctx := context.Background()
	mustStatus(t, s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: lockOut}), http.StatusOK)
	lookup := func() bool {
		res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-1"}})
		return err == nil && !res.IsError
	}
	if lookup() || len(up.Calls()) != 0 {
		t.Fatal("the lock-out policy let a call through")
	}

	// POST /api/v1/policy/rollback {"version": 1} by alice (no manage-policy).
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	mustStatus(t, s.Do("POST", "/api/v1/policy/rollback", aliceKey, adminapi.RollbackPolicy{Version: 1}), http.StatusForbidden)
	// POST /api/v1/policy/rollback {"version": 99}.
	if r := s.Do("POST", "/api/v1/policy/rollback", s.AdminKey, adminapi.RollbackPolicy{Version: 99}); r.Status != http.StatusNotFound ||
		!strings.Contains(string(r.Body), "version 99 does not exist") {
		t.Errorf("rollback to 99: %d %s", r.Status, r.Body)
	}
	mustStatus(t, s.Do("POST", "/api/v1/policy/rollback", s.AdminKey, adminapi.RollbackPolicy{Version: 0}), http.StatusBadRequest)
	reasons := []string{}
	for _, r := range records(t, s, audit.Query{Event: policy.EventRollback}) {
		reasons = append(reasons, string(r.Outcome)+"/"+r.Reason)
	}
	if strings.Join(reasons, " ") != "error/invalid-request error/not-found denied/forbidden" {
		t.Errorf("refused rollbacks on record (newest first): %v", reasons)
	}
	if lookup() {
		t.Fatal("a refused rollback changed the policy")
	}

	code, stdout, stderr := runCLI(s, s.AdminKey, "policy", "rollback", "1")
	if code != cli.ExitOK || !strings.Contains(stdout, "version 1 is in force again as policy version 3") {
		t.Fatalf("policy rollback 1: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var v1, v3 policy.Version
	s.Do("GET", "/api/v1/policy?version=1", s.AdminKey, nil).JSON(t, &v1)
	s.Do("GET", "/api/v1/policy", s.AdminKey, nil).JSON(t, &v3)
	if v3.Version != 3 || v3.Digest != v1.Digest || v3.Source != v1.Source || v3.CreatedBy != "admin" {
		t.Errorf("in force after rollback: version %d by %s, digest %s (version 1: %s)", v3.Version, v3.CreatedBy, v3.Digest, v1.Digest)
	}
	var h adminapi.PolicyHistory
	s.Do("GET", "/api/v1/policy/history", s.AdminKey, nil).JSON(t, &h)
	if len(h.Versions) != 3 {
		t.Errorf("history has %d versions, want 3 (append-only)", len(h.Versions))
	}
	if !lookup() || len(up.Calls()) != 1 {
		t.Errorf("the call does not run after the rollback (upstream calls %d)", len(up.Calls()))
	}
	recs := records(t, s, audit.Query{Event: policy.EventRollback, Outcome: audit.Success})
	if len(recs) != 1 {
		t.Fatalf("%d policy-rolled-back records, want 1", len(recs))
	}
	d := recs[0].Detail
	if recs[0].Actor != "admin" || fmt.Sprint(d["rolled_back_to"]) != "1" || fmt.Sprint(d["previous_version"]) != "2" ||
		fmt.Sprint(d["version"]) != "3" || d["digest"] != v1.Digest {
		t.Errorf("rollback record: %s %+v", recs[0].Actor, d)
	}
	if code, _, stderr := runCLI(s, s.AdminKey, "policy", "rollback", "x"); code != cli.ExitUsage || !strings.Contains(stderr, "positive number") {
		t.Errorf("policy rollback x: exit %d %s", code, stderr)
	}
}
