package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/policy"
)

var proposalID = regexp.MustCompile(`proposal (prop_[0-9a-f]{16}) opened`)

// The proposal commands end to end: policy set under review opens a
// proposal (nothing changes), show prints the diff and the replay, the
// author cannot approve, another reviewer does and it is in force; the
// version log names both; tools rollback is a proposal too.
func TestProposalCommands(t *testing.T) {
	s := apptest.StartWith(t, func(c *config.Config) { c.RequireReviewKinds = []string{"policy,tool-version", "tool-labels"} })
	admin := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	up := apptest.NewUpstream(t, s, "fin", false)
	run(admin, "upstreams", "add", "fin", "--url", up.URL, "--allow-private").mustOK(t)
	run(admin, "roles", "create", "gov", "--grant", "manage-policy:*", "--grant", "manage-tools:*", "--grant", "read-audit:*").mustOK(t)
	run(admin, "users", "create", "bob", "--role", "gov").mustOK(t)
	var created adminapi.CreatedKey
	if err := json.Unmarshal([]byte(run(admin, "keys", "create", "--user", "bob", "--json").mustOK(t).stdout), &created); err != nil {
		t.Fatal(err)
	}
	bob := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": created.APIKey}

	file := filepath.Join(t.TempDir(), "policy.yaml")
	src := strings.Replace(string(policy.DefaultSource()), "rules:\n", "rules:\n  - id: no-lookups\n    when: tool.name == \"fin.lookup\"\n    decision: deny\n", 1)
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(bob, "policy", "set", file); r.code != ExitError || !strings.Contains(r.stderr, "reason is required") {
		t.Fatalf("without a reason: %+v", r)
	}
	r := run(bob, "policy", "set", file, "--reason", "lookups leak").mustOK(t)
	m := proposalID.FindStringSubmatch(r.stdout)
	if m == nil || !strings.Contains(r.stdout, "gate replay") || !strings.Contains(r.stdout, "nothing changed yet") {
		t.Fatalf("policy set under review: %s", r.stdout)
	}
	id := m[1]
	if r := run(admin, "policy", "show").mustOK(t); !strings.Contains(r.stdout, "# policy version 1,") {
		t.Fatalf("the policy changed before review: %s", r.stdout)
	}
	r = run(admin, "proposals", "show", id).mustOK(t)
	for _, want := range []string{"author:   bob", "reason:   lookups leak", "rule no-lookups added", "+   - id: no-lookups", "gate policy-tests", "replay of"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show: want %q in\n%s", want, r.stdout)
		}
	}
	if r := run(admin, "proposals", "list", "--state", "open").mustOK(t); !lineWith(r.stdout, id, "open") {
		t.Errorf("list: %s", r.stdout)
	}
	if r := run(bob, "proposals", "approve", id, "--reason", "mine"); r.code != ExitError || !strings.Contains(r.stderr, "author") {
		t.Errorf("self-approval: %+v", r)
	}
	if r := run(admin, "proposals", "approve", id); r.code != ExitUsage {
		t.Errorf("approval without a reason: %+v", r)
	}
	if r := run(admin, "proposals", "approve", id, "--reason", "ok").mustOK(t); !strings.Contains(r.stdout, "approved and applied: policy is at 2") {
		t.Errorf("approve: %s", r.stdout)
	}
	r = run(admin, "audit", "query", "--kind", "version_log", "--target", "policy").mustOK(t)
	if !lineWith(r.stdout, "policy", "2", "bob", "admin", "lookups leak", "policy-tests=pass,replay=pass") {
		t.Errorf("version log: %s", r.stdout)
	}
	// tools rollback with nothing earlier: refused; activate of v1 (already active): refused before a proposal.
	if r := run(bob, "tools", "rollback", "fin.lookup", "--reason", "x"); r.code != ExitError || !strings.Contains(r.stderr, "no earlier active version") {
		t.Errorf("rollback: %+v", r)
	}
	up.Redefine("Look up, and more.")
	run(admin, "upstreams", "sync", "fin").mustOK(t)
	r = run(bob, "tools", "activate", "fin.lookup", "2", "--reason", "new description").mustOK(t)
	if m = proposalID.FindStringSubmatch(r.stdout); m == nil || !strings.Contains(r.stdout, "gate schema-compatible") {
		t.Fatalf("activate under review: %s", r.stdout)
	}
	run(bob, "proposals", "withdraw", m[1]).mustOK(t)
	if r := run(admin, "proposals", "show", m[1]).mustOK(t); !strings.Contains(r.stdout, "withdrawn") {
		t.Errorf("withdrawn: %s", r.stdout)
	}
}
