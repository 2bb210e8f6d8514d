package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/app/apptest"
)

// The lifecycle commands: a schedule shown with its due date; a bad one
// refused before anything is sent; a compromise (its reason required)
// listed as overdue, its kill switch engaged until the rotation releases
// it; a user losing the secrets role marks every secret; rekey --wait
// ends with every value under the new data key.
func TestSecretLifecycleCommands(t *testing.T) {
	s := apptest.Start(t)
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	r := runIn(env, "value-one-aa11\n", "secrets", "set", "api-token", "--upstream", "fin", "--rotate-every", "90d").mustOK(t)
	if !regexp.MustCompile(`api-token\s+default\s+1\s+fin\s+0h\s+90d\s+\d{4}-\d\d-\d\d \(in 89d\)`).MatchString(r.stdout) {
		t.Errorf("set --rotate-every: %s", r.stdout)
	}
	if r := runIn(env, "v\n", "secrets", "rotate", "api-token", "--rotate-every", "90 days"); r.code != ExitUsage || !strings.Contains(r.stderr, "--rotate-every") {
		t.Errorf("a bad period: %+v", r)
	}
	runIn(env, "other-bb22\n", "secrets", "set", "db-pass", "--upstream", "db").mustOK(t)
	if r := run(env, "secrets", "list", "--overdue").mustOK(t); strings.Contains(r.stdout, "api-token") || strings.Contains(r.stdout, "db-pass") {
		t.Errorf("overdue before anything is due: %s", r.stdout)
	}
	if r := run(env, "secrets", "compromised", "api-token"); r.code != ExitUsage || !strings.Contains(r.stderr, "--reason") {
		t.Errorf("compromised without a reason: %+v", r)
	}
	r = run(env, "secrets", "compromised", "api-token", "--reason", "pasted in chat", "--kill").mustOK(t)
	if !strings.Contains(r.stderr, "kill switches engaged") || !strings.Contains(r.stdout, "NOW: compromised (pasted in chat)") {
		t.Errorf("compromised: %+v", r)
	}
	r = run(env, "secrets", "list", "--overdue").mustOK(t)
	if !strings.Contains(r.stdout, "api-token") || strings.Contains(r.stdout, "db-pass") {
		t.Errorf("overdue after the compromise: %s", r.stdout)
	}
	if r := run(env, "killswitch", "list").mustOK(t); !regexp.MustCompile(`upstream\s+fin`).MatchString(r.stdout) {
		t.Errorf("no kill switch on fin: %s", r.stdout)
	}
	runIn(env, "value-two-cc33\n", "secrets", "rotate", "api-token").mustOK(t)
	if r := run(env, "killswitch", "list", "--json").mustOK(t); !strings.Contains(r.stdout, "released_at") {
		t.Errorf("the kill switch was not released by the rotation: %s", r.stdout)
	}
	if r := run(env, "secrets", "list", "--overdue").mustOK(t); strings.Contains(r.stdout, "api-token") {
		t.Errorf("still overdue after rotation: %s", r.stdout)
	}

	run(env, "roles", "create", "secrets", "--grant", "manage-secrets:*").mustOK(t)
	run(env, "roles", "create", "caller", "--grant", "invoke:fin.*").mustOK(t)
	run(env, "users", "create", "bob", "--role", "secrets", "--role", "caller").mustOK(t)
	r = run(env, "users", "set-roles", "bob", "--role", "caller").mustOK(t)
	if !strings.Contains(r.stdout, "caller") || strings.Contains(r.stdout, "secrets") {
		t.Errorf("set-roles: %s", r.stdout)
	}
	r = run(env, "secrets", "list", "--overdue").mustOK(t)
	if strings.Count(r.stdout, "NOW: staff-change") != 2 {
		t.Errorf("after bob lost the secrets role: %s", r.stdout)
	}
	if r := run(env, "users", "set-roles", "bob", "--role", "nope"); r.code == ExitOK {
		t.Errorf("an unknown role: %+v", r)
	}
	// Rotated, the marks go; disabling another secrets manager marks both again.
	runIn(env, "value-three-dd44\n", "secrets", "rotate", "api-token").mustOK(t)
	runIn(env, "other-ee55\n", "secrets", "rotate", "db-pass").mustOK(t)
	if r := run(env, "secrets", "list", "--overdue").mustOK(t); strings.Contains(r.stdout, "NOW") {
		t.Errorf("marks after rotation: %s", r.stdout)
	}
	run(env, "users", "create", "carol", "--role", "secrets").mustOK(t)
	run(env, "users", "disable", "carol").mustOK(t)
	if r := run(env, "secrets", "list", "--overdue").mustOK(t); strings.Count(r.stdout, "NOW: staff-change (user carol disabled)") != 2 {
		t.Errorf("after carol was disabled: %s", r.stdout)
	}
	if r := run(env, "audit", "query", "--event", "user-disable", "--json").mustOK(t); !strings.Contains(r.stdout, "secrets_rotate_now") {
		t.Errorf("the disable record does not name the secrets: %s", r.stdout)
	}

	r = run(env, "secrets", "rekey", "--wait").mustOK(t)
	if r = run(env, "secrets", "rekey", "--status").mustOK(t); !strings.Contains(r.stdout, "every value is sealed under data key 2") {
		t.Errorf("rekey: %s", r.stdout)
	}
	for _, v := range []string{"value-one-aa11", "value-two-cc33", "other-bb22"} {
		if r := run(env, "audit", "query", "--json"); strings.Contains(r.stdout, v) {
			t.Errorf("the audit log shows %s", v)
		}
	}
}
