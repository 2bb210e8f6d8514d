package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/adminapi"
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

// A lesser identity manager cannot set the password of a user holding more than they do:
// that would let them sign in to the console as that user.
func TestUsersSetPasswordNeedsTheUsersGrants(t *testing.T) {
	t.Parallel()
	env, _, _ := server(t)
	run(env, "roles", "create", "idm", "--grant", "manage-identities:*").mustOK(t)
	run(env, "users", "create", "hr", "--role", "idm").mustOK(t)
	run(env, "users", "create", "alice").mustOK(t)
	var k adminapi.CreatedKey
	if err := json.Unmarshal([]byte(run(env, "keys", "create", "--user", "hr", "--json").mustOK(t).stdout), &k); err != nil {
		t.Fatal(err)
	}
	hr := map[string]string{"OSTIARY_ADDR": env["OSTIARY_ADDR"], "OSTIARY_TOKEN": k.APIKey}
	const pw = "correct horse battery staple"
	runIn(hr, pw, "users", "set-password", "alice").mustOK(t)
	who := run(env, "whoami").mustOK(t).stdout
	if !strings.Contains(who, "admin") {
		t.Fatalf("whoami: %s", who)
	}
	if r := runIn(hr, pw, "users", "set-password", "admin"); r.code == 0 {
		t.Errorf("hr set the admin's console password: %s", r.stdout)
	} else if strings.Contains(r.stderr, "does not exist") {
		t.Errorf("refused for the wrong reason: %s", r.stderr)
	}
	// A key without manage-identities is refused before anything is
	// checked or hashed (argon2id's 19 MiB are not for it to spend): even
	// a password too short to be valid gets the permission error.
	run(env, "users", "create", "carol").mustOK(t)
	var ck adminapi.CreatedKey
	if err := json.Unmarshal([]byte(run(env, "keys", "create", "--user", "carol", "--json").mustOK(t).stdout), &ck); err != nil {
		t.Fatal(err)
	}
	carol := map[string]string{"OSTIARY_ADDR": env["OSTIARY_ADDR"], "OSTIARY_TOKEN": ck.APIKey}
	if r := runIn(carol, pw, "users", "set-password", "alice"); r.code == 0 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("a key without manage-identities: %d %s", r.code, r.stderr)
	}
	base := env["OSTIARY_ADDR"]
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/api/v1/users/alice/console-password", strings.NewReader(`{"password":"short"}`))
	req.Header.Set("Authorization", "Bearer "+ck.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an invalid password from a key without manage-identities: %d, want 403 (the grant comes first)", resp.StatusCode)
	}
}
