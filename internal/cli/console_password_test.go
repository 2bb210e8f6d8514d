package cli

import (
	"strings"
	"testing"
)

func TestUsersSetPassword(t *testing.T) {
	t.Parallel()
	env, _, _ := server(t)
	run(env, "users", "create", "alice").mustOK(t)
	run(env, "users", "create", "ci-bot", "--service").mustOK(t)
	const pw = "correct horse battery staple"
	if r := runIn(env, pw+"\n", "users", "set-password", "alice").mustOK(t); !strings.Contains(r.stdout, "console password set for alice") {
		t.Errorf("stdout: %s", r.stdout)
	}
	if r := runIn(env, pw+"\n", "users", "set-password", "alice", pw); r.code == 0 {
		t.Error("a password on the command line was accepted")
	}
	for in, want := range map[string]string{
		"short\n":                "at least 12",
		pw + "\nsecond\n":        "one line",
		strings.Repeat("a", 300): "at most",
	} {
		if r := runIn(env, in, "users", "set-password", "alice"); r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%q: code %d stderr %s", in[:5], r.code, r.stderr)
		}
	}
	if r := runIn(env, pw, "users", "set-password", "ci-bot"); r.code == 0 || !strings.Contains(r.stderr, "service account") {
		t.Errorf("service account: %d %s", r.code, r.stderr)
	}
	if r := runIn(env, pw, "users", "set-password", "nobody"); r.code == 0 || strings.Contains(r.stderr, pw) {
		t.Errorf("unknown user: %d %s", r.code, r.stderr)
	}
	r := run(env, "audit", "query", "--event", "user-console-password-set").mustOK(t)
	if !strings.Contains(r.stdout, "user:alice") {
		t.Errorf("not audited: %s", r.stdout)
	}
	if r := run(env, "audit", "query", "--contains", "horse").mustOK(t); strings.Contains(r.stdout, "console-password") {
		t.Errorf("the password reached the audit log: %s", r.stdout)
	}
}
