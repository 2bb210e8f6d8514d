package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/policy"
)

func TestPolicyTestCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "default.yaml")
	os.WriteFile(good, policy.DefaultSource(), 0o600)
	r := run(nil, "policy", "test", good).mustOK(t)
	if !strings.Contains(r.stdout, "a large payment needs two approvers") || !strings.Contains(r.stdout, "0 failed") {
		t.Errorf("policy test: %s", r.stdout)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(policy.DefaultSource()), "expect: {decision: deny, reasons: [secret-data-to-agents]}", "expect: {decision: allow}", 1)), 0o600)
	if r := run(nil, "policy", "test", bad); r.code != ExitError || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stderr, "1 of 10 policy tests failed") {
		t.Errorf("failing test: %+v", r)
	}
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("version: 1\nrules:\n  - id: x\n    when: 'args.amount >'\n    decision: deny\n"), 0o600)
	if r := run(nil, "policy", "test", broken); r.code != ExitError || !strings.Contains(r.stderr, `rule "x": when`) {
		t.Errorf("broken policy: %+v", r)
	}
	if r := run(nil, "policy", "test", filepath.Join(dir, "missing.yaml")); r.code != ExitUsage {
		t.Errorf("missing file: %+v", r)
	}
}

func TestPolicyAndLabelCommands(t *testing.T) {
	s := apptest.Start(t)
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	up := apptest.NewUpstream(t, s, "fin", false)
	run(env, "upstreams", "add", "fin", "--url", up.URL, "--allow-private").mustOK(t)
	run(env, "roles", "create", "payer", "--grant", "invoke:fin.*").mustOK(t)
	run(env, "users", "create", "bob", "--role", "payer").mustOK(t)

	r := run(env, "tools", "label", "fin.pay", "--data-class", "financial", "--irreversible", "--owner", "Payments team").mustOK(t)
	if !strings.Contains(r.stdout, "financial irreversible owner=Payments team") {
		t.Errorf("tools label: %s", r.stdout)
	}
	run(env, "tools", "label", "fin.pay", "--risk", "high").mustOK(t) // merges
	// The question labels: each on its own, merged with the others, and
	// unset with =false.
	if r := run(env, "tools", "label", "fin.pay", "--allow-elicitation", "--allow-sampling").mustOK(t); !strings.Contains(r.stdout, "elicitation sampling") {
		t.Errorf("tools label --allow-*: %s", r.stdout)
	}
	if r := run(env, "tools", "label", "fin.pay", "--allow-sampling=false").mustOK(t); !strings.Contains(r.stdout, "irreversible elicitation owner=") {
		t.Errorf("tools label --allow-sampling=false: %s", r.stdout)
	}
	run(env, "tools", "label", "fin.pay", "--allow-elicitation=false").mustOK(t)
	if r := run(env, "tools", "list").mustOK(t); !strings.Contains(r.stdout, "financial risk=high irreversible") || !strings.Contains(r.stdout, "(unlabelled)") {
		t.Errorf("tools list: %s", r.stdout)
	}
	r = run(env, "policy", "explain", "--as", "bob", "fin.pay", `{"amount": 20000, "to": "ACME"}`).mustOK(t)
	for _, want := range []string{"decision:  approve", "risk:      85/100", "large-irreversible-payment", "2 distinct approver(s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q: %s", want, r.stdout)
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tools", "label", "fin.pay"}, ExitUsage, "at least one label"},
		{[]string{"tools", "label", "fin.pay", "--clear", "--egress"}, ExitUsage, "--clear takes no other"},
		{[]string{"tools", "label", "fin.pay", "--risk", "extreme"}, ExitUsage, "risk"},
		{[]string{"tools", "label", "fin.nope", "--egress"}, ExitError, "not in the catalog"},
		{[]string{"policy", "explain", "fin.pay"}, ExitUsage, "--as"},
		{[]string{"policy", "explain", "--as", "bob", "fin.pay", "{"}, ExitUsage, "not valid JSON"},
	} {
		if r := run(env, c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: %+v", c.args, r)
		}
	}
	run(env, "tools", "label", "fin.pay", "--clear").mustOK(t)

	file := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(file, []byte("version: 1\ndescription: lock payments\nrules:\n  - id: no-pay\n    when: tool.name == 'fin.pay'\n    decision: deny\ntests:\n  - principal: {user: bob}\n    tool: {name: fin.pay}\n    expect: {decision: deny}\n"), 0o600)
	r = run(env, "policy", "set", file).mustOK(t)
	if !strings.Contains(r.stdout, "policy version 2 in force") {
		t.Errorf("policy set: %s", r.stdout)
	}
	if r := run(env, "policy", "history").mustOK(t); !strings.Contains(r.stdout, "lock payments") || !strings.Contains(r.stdout, "system") {
		t.Errorf("policy history: %s", r.stdout)
	}
	if r := run(env, "policy", "show").mustOK(t); !strings.Contains(r.stdout, "# policy version 2") || !strings.Contains(r.stdout, "no-pay") {
		t.Errorf("policy show: %s", r.stdout)
	}
	if r := run(env, "policy", "show", "--version", "1").mustOK(t); !strings.Contains(r.stdout, "large-irreversible-payment") {
		t.Errorf("policy show --version 1: %s", r.stdout)
	}
	if r := run(env, "policy", "show", "--version", "9"); r.code != ExitError || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("policy show --version 9: %+v", r)
	}
	r = run(env, "policy", "explain", "--as", "bob", "fin.pay", `{"amount": 1, "to": "x"}`).mustOK(t)
	if !strings.Contains(r.stdout, "decision:  deny") || !strings.Contains(r.stdout, "policy:    version 2") {
		t.Errorf("explain under version 2: %s", r.stdout)
	}
}
