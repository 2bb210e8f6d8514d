package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

func run(env map[string]string, args ...string) result { return runIn(env, "", args...) }

// runIn runs with stdin.
func runIn(env map[string]string, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

func (r result) mustOK(t *testing.T) result {
	t.Helper()
	if r.code != ExitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// mustAddUnsynced checks an 'upstreams add' of an upstream that cannot be
// listed: it is added, and the command exits ExitError saying so.
func (r result) mustAddUnsynced(t *testing.T) result {
	t.Helper()
	if r.code != ExitError || !strings.Contains(r.stderr, "the upstream was added") || !strings.Contains(r.stdout, "failed") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// server runs 'ostiary init' and 'ostiary serve' through the CLI itself.
func server(t *testing.T) (env map[string]string, dir string, stop func()) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	var initOut struct {
		APIKey string `json:"api_key"`
	}
	r := run(nil, "init", "--data", dir, "--json").mustOK(t)
	if err := json.Unmarshal([]byte(r.stdout), &initOut); err != nil || !strings.HasPrefix(initOut.APIKey, "ost_") {
		t.Fatalf("init --json printed %q", r.stdout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}, nil, out, errb, func(string) string { return "" })
	}()
	re := regexp.MustCompile(`serving on http://(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s %s", out, errb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	addr := re.FindStringSubmatch(out.String())[1]
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d: %s", code, errb)
		}
	}
	t.Cleanup(stop)
	return map[string]string{"OSTIARY_ADDR": "http://" + addr, "OSTIARY_TOKEN": initOut.APIKey}, dir, stop
}

func TestCommandSurface(t *testing.T) {
	env, dir, stop := server(t)

	r := run(env, "whoami").mustOK(t)
	if !strings.Contains(r.stdout, "admin") || !strings.Contains(r.stdout, "admin:*") {
		t.Errorf("whoami: %s", r.stdout)
	}
	r = run(env, "roles", "create", "clerk", "--grant", "invoke:finance.*", "--grant", "read-audit:*").mustOK(t)
	if !strings.Contains(r.stdout, "clerk") || !strings.Contains(r.stdout, "invoke:finance.*") {
		t.Errorf("roles create: %s", r.stdout)
	}
	var roles adminapi.RoleList
	json.Unmarshal([]byte(run(env, "roles", "list", "--json").mustOK(t).stdout), &roles)
	if len(roles.Roles) != 3 {
		t.Errorf("roles list --json: %+v", roles)
	}
	r = run(env, "users", "create", "alice", "--role", "clerk").mustOK(t)
	if !regexp.MustCompile(`alice\s+human\s+enabled\s+clerk`).MatchString(r.stdout) {
		t.Errorf("users create: %s", r.stdout)
	}
	var svc adminapi.UserView
	json.Unmarshal([]byte(run(env, "users", "create", "ci-bot", "--service", "--json").mustOK(t).stdout), &svc)
	if svc.Name != "ci-bot" || !svc.Service {
		t.Errorf("users create --service --json: %+v", svc)
	}
	var users adminapi.UserList
	json.Unmarshal([]byte(run(env, "users", "list", "--json").mustOK(t).stdout), &users)
	if len(users.Users) != 3 {
		t.Errorf("users list --json: %+v", users)
	}

	var created adminapi.CreatedKey
	r = run(env, "keys", "create", "--user", "alice", "--expires", "8h", "--scope", "read-audit:*", "--json").mustOK(t)
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || created.Key.Scope[0] != "read-audit:*" || created.Key.ExpiresAt == nil {
		t.Fatalf("keys create --json: %s", r.stdout)
	}
	var staging adminapi.CreatedKey
	r = run(env, "keys", "create", "--user", "alice", "--env", "staging", "--json").mustOK(t)
	if err := json.Unmarshal([]byte(r.stdout), &staging); err != nil || staging.Key.Environment != "staging" {
		t.Fatalf("keys create --env --json: %s", r.stdout)
	}
	if r := run(map[string]string{"OSTIARY_ADDR": env["OSTIARY_ADDR"], "OSTIARY_TOKEN": staging.APIKey}, "whoami").mustOK(t); !strings.Contains(r.stdout, "env:    staging") {
		t.Errorf("whoami of a staging key: %s", r.stdout)
	}
	r = run(env, "keys", "create", "--user", "alice").mustOK(t)
	if !strings.Contains(r.stdout, "shown once") || !regexp.MustCompile(`ost_[a-z2-7]{16}_[a-z2-7]{52}`).MatchString(r.stdout) {
		t.Errorf("keys create: %s", r.stdout)
	}
	alice := map[string]string{"OSTIARY_ADDR": env["OSTIARY_ADDR"], "OSTIARY_TOKEN": created.APIKey}
	run(alice, "audit", "query", "--limit", "1").mustOK(t)
	if r := run(alice, "users", "list"); r.code != ExitError || !strings.Contains(r.stderr, "manage-identities") {
		t.Errorf("scoped key listing users: %+v", r)
	}
	r = run(env, "keys", "list", "--user", "alice").mustOK(t)
	if strings.Count(r.stdout, "alice") != 3 || !strings.Contains(r.stdout, " staging ") || strings.Contains(r.stdout, created.APIKey) {
		t.Errorf("keys list: %s", r.stdout)
	}
	run(env, "keys", "revoke", created.Key.ID).mustOK(t)
	if r := run(alice, "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "authentication required") {
		t.Errorf("revoked key: %+v", r)
	}
	r = run(env, "users", "disable", "alice").mustOK(t)
	if !strings.Contains(r.stdout, "disabled") {
		t.Errorf("users disable: %s", r.stdout)
	}
	run(env, "users", "enable", "alice").mustOK(t)
	run(env, "users", "show", "alice").mustOK(t)

	var page adminapi.AuditPage
	r = run(env, "audit", "query", "--user", "admin", "--event", "user-create", "--since", "1h", "--limit", "5", "--json").mustOK(t)
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Records) != 2 {
		t.Fatalf("audit query --json: %s", r.stdout)
	}
	for _, rec := range page.Records {
		if rec.Event != "user-create" || rec.Actor != "admin" {
			t.Errorf("record %+v", rec)
		}
	}
	r = run(env, "audit", "query", "--event", "authn-failure").mustOK(t)
	if !strings.Contains(r.stdout, "key-revoked") {
		t.Errorf("audit query table: %s", r.stdout)
	}

	stop()
	r = run(nil, "audit", "verify", "--data", dir).mustOK(t)
	if strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 || !strings.HasPrefix(r.stdout, "audit chain OK") {
		t.Errorf("verify summary: %q", r.stdout)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ostiary.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE audit_records SET target = 'user:mallory' WHERE seq = 4"); err != nil {
		t.Fatal(err)
	}
	// The log is the evidence: an altered index is found with --index, and
	// audit reindex rebuilds it from the log.
	run(nil, "audit", "verify", "--data", dir).mustOK(t)
	r = run(nil, "audit", "verify", "--data", dir, "--index")
	if r.code != ExitTampered || !strings.Contains(r.stderr, "record 4") {
		t.Errorf("verify --index after tampering with the index: %+v", r)
	}
	r = run(nil, "audit", "reindex", "--data", dir).mustOK(t)
	if !strings.Contains(r.stdout, "audit index rebuilt from the log") {
		t.Errorf("reindex: %+v", r)
	}
	run(nil, "audit", "verify", "--data", dir, "--index").mustOK(t)
	tamperLog(t, dir, "user:")
	r = run(nil, "audit", "verify", "--data", dir)
	if r.code != ExitTampered || !strings.Contains(r.stderr, "checksum mismatch") {
		t.Errorf("verify after tampering with the log: %+v", r)
	}
}

// tamperLog changes one byte of the first occurrence of text in the audit
// log's first segment, as an attacker with file access would.
func tamperLog(t *testing.T, dir, text string) {
	t.Helper()
	path := filepath.Join(dir, "audit", "00000000000000000001.wal")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), text)
	if i < 0 {
		t.Fatalf("%q is not in the log", text)
	}
	b[i] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"OSTIARY_TOKEN": "ost_x", "OSTIARY_ADDR": "http://127.0.0.1:1"}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"users", "create"}, ExitUsage, "accepts 1 arg"},
		{[]string{"users", "create", "a", "b"}, ExitUsage, "accepts 1 arg"},
		{[]string{"users", "list", "--bogus"}, ExitUsage, "unknown flag"},
		{[]string{"roles", "create", "r"}, ExitUsage, "--grant"},
		{[]string{"keys", "create"}, ExitUsage, "--user"},
		{[]string{"keys", "create", "--user", "a", "--expires", "forever"}, ExitUsage, "invalid lifetime"},
		{[]string{"keys", "create", "--user", "a", "--env", "Prod"}, ExitUsage, "--env"},
		{[]string{"secrets", "set", "x", "--upstream", "u", "--env", "prod env"}, ExitUsage, "--env"},
		{[]string{"audit", "query", "--since", "last tuesday"}, ExitUsage, "--since"},
		{[]string{"audit", "query", "--limit", "0"}, ExitUsage, "--limit"},
		{[]string{"init"}, ExitUsage, "--data"},
		{[]string{"audit", "verify"}, ExitUsage, "--data"},
		{[]string{"serve", "--data", "/tmp/x", "--listen", "0.0.0.0:8080"}, ExitUsage, "non-loopback"},
		{[]string{"serve", "--data", "/tmp/x", "--approval-webhook", "http://example.com/T0/x"}, ExitUsage, "loopback"},
		{[]string{"serve", "--data", "/tmp/x", "--approval-wait", "11m"}, ExitUsage, "--approval-wait"},
		{[]string{"serve", "--data", "/tmp/x", "--anchor", "/tmp/x/anchors"}, ExitUsage, "inside the data directory"},
		{[]string{"serve", "--data", "/tmp/x", "--anchor", "http://example.com/w"}, ExitUsage, "loopback"},
		{[]string{"serve", "--data", "/tmp/x", "--anchor", "anchors.txt"}, ExitUsage, "absolute"},
		{[]string{"evidence", "verify", "x.bundle"}, ExitUsage, "--public-key"},
		{[]string{"evidence", "export", "--user", "alice", "-o", "x"}, ExitUsage, "--since"},
		{[]string{"evidence", "export", "--request-id", "r", "--approval", "a", "-o", "x"}, ExitUsage, "exactly one"},
		{[]string{"serve", "--data", "/tmp/x", "--require-review-kinds", "policy,polcy"}, ExitUsage, "--require-review-kinds \"polcy\""},
		{[]string{"serve", "--data", "/tmp/x", "--require-review", "PROD"}, ExitUsage, "--require-review \"PROD\""},
		{[]string{"serve", "--data", "/tmp/x", "--review-quorum", "11"}, ExitUsage, "--review-quorum"},
		{[]string{"upstreams", "add", "fin", "--url", "http://127.0.0.1:1/mcp", "--token-exchange", "fin-api"}, ExitUsage, "--token-exchange-client-id"},
		{[]string{"upstreams", "add", "fin", "--url", "http://127.0.0.1:1/mcp", "--token-exchange-client-id", "gw"}, ExitUsage, "go with --token-exchange"},
		{[]string{"serve", "--data", "/tmp/x", "--store-timeout", "10ms"}, ExitUsage, "--store-timeout"},
		{[]string{"serve", "--data", "/tmp/x", "--alerts", "/nonexistent/alerts.yaml"}, ExitUsage, "--alerts"},
		{[]string{"alerts", "ack", "al_00000000000000000000"}, ExitUsage, "--reason"},
		{[]string{"alerts", "list", "--open", "--status", "acknowledged"}, ExitUsage, "exclude each other"},
		{[]string{"alerts", "list", "--status", "closed"}, ExitUsage, "--status"},
		{[]string{"reviews", "start", "--reviewer", "rita", "--due", "14d"}, ExitUsage, "--name"},
		{[]string{"reviews", "start", "--name", "Q4", "--due", "14d"}, ExitUsage, "--reviewer"},
		{[]string{"reviews", "attest", "ri_x", "--reason", "r"}, ExitUsage, "--keep or --revoke"},
		{[]string{"reviews", "attest", "ri_x", "--keep", "--revoke", "role:a", "--reason", "r"}, ExitUsage, "--keep or --revoke"},
		{[]string{"reviews", "attest", "ri_x", "--keep"}, ExitUsage, "--reason"},
		{[]string{"audit", "query", "--kind", "access_reviews"}, ExitUsage, "access_review"},
		{[]string{"nonsense"}, ExitUsage, "unknown command"},
		{[]string{"whoami"}, ExitError, "cannot reach ostiary"},
	}
	for _, c := range cases {
		r := run(env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
	if r := run(map[string]string{}, "users", "list"); r.code != ExitError || !strings.Contains(r.stderr, "OSTIARY_TOKEN is not set") {
		t.Errorf("no token: %+v", r)
	}
	if r := run(map[string]string{"OSTIARY_TOKEN": "ost_x", "OSTIARY_ADDR": "http://10.1.2.3:8080"}, "users", "list"); r.code != ExitError || !strings.Contains(r.stderr, "plain HTTP") {
		t.Errorf("plain HTTP to a remote host: %+v", r)
	}
}

func TestInitTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my data's")
	r := run(nil, "init", "--data", dir).mustOK(t)
	if !strings.Contains(r.stdout, "shown once") {
		t.Errorf("init output: %s", r.stdout)
	}
	// The printed next step runs as printed: the shell reads it as this
	// program, serve, --data and the directory, space and quote included.
	_, next, ok := strings.Cut(r.stdout, "Next: ")
	next, _, _ = strings.Cut(next, "\n")
	out, err := exec.Command("sh", "-c", `set -- `+next+`; printf '%s\n' "$@"`).Output()
	exe, _ := os.Executable()
	if want := exe + "\nserve\n--data\n" + dir + "\n"; !ok || err != nil || string(out) != want {
		t.Errorf("next step %q reads as %q (%v), want %q", next, out, err, want)
	}
	r = run(nil, "init", "--data", dir)
	if r.code != ExitError || !strings.Contains(r.stderr, "already initialised") {
		t.Errorf("second init: %+v", r)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2026-11-01T00:00:00Z": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v", in, got, err)
		}
	}
}

// The README's run command: demo initialises, seeds users and an upstream,
// serves, and prints keys and commands that work as printed.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for round := range 2 { // the second round reuses the initialised directory
		ctx, cancel := context.WithCancel(context.Background())
		out, errb := &syncBuf{}, &syncBuf{}
		done := make(chan int)
		go func() {
			done <- Run(ctx, []string{"demo", "--data", dir, "--listen", "127.0.0.1:0", "--approval-wait", "1s"}, nil, out, errb, func(string) string { return "" })
		}()
		ready := regexp.MustCompile(`(?s)export OSTIARY_ADDR=(\S+).*Stop with Ctrl-C|set up earlier`)
		deadline := time.Now().Add(20 * time.Second)
		for !ready.MatchString(out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("demo did not start: %s %s", out, errb)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if round == 0 {
			addr := regexp.MustCompile(`export OSTIARY_ADDR=(\S+)`).FindStringSubmatch(out.String())[1]
			key := func(user string) string {
				return regexp.MustCompile(`(?m)^  ` + user + ` +(ost_\S+)`).FindStringSubmatch(out.String())[1]
			}
			as := func(user string) map[string]string {
				return map[string]string{"OSTIARY_ADDR": addr, "OSTIARY_TOKEN": key(user)}
			}
			r := run(as("alice"), "mcp", "call", "shop.customer_profile", `{"customer_id":"C-7"}`).mustOK(t)
			if !strings.Contains(r.stdout, "Ada Lovelace") || !strings.Contains(r.stdout, `"served_to":"alice"`) {
				t.Errorf("alice's call: %s", r.stdout)
			}
			r = run(as("alice"), "mcp", "call", "shop.lookup_order", `{"order_id":"A-1001"}`).mustOK(t)
			if !strings.Contains(r.stdout, "injected from Ostiary's vault") {
				t.Errorf("the demo upstream did not get its credential from the vault: %s", r.stdout)
			}
			if r := run(as("admin"), "secrets", "list").mustOK(t); !strings.Contains(r.stdout, "shop-token") {
				t.Errorf("secrets list: %s", r.stdout)
			}
			if r := run(as("bob"), "mcp", "call", "shop.customer_profile", `{"customer_id":"C-7"}`); r.code == ExitOK {
				t.Errorf("bob read personal data: %s", r.stdout)
			}
			r = run(as("bob"), "mcp", "tools", "--protocol", "2025-11-25").mustOK(t)
			if !strings.Contains(r.stdout, "shop.pay_invoice") || strings.Contains(r.stdout, "customer_profile") {
				t.Errorf("bob's tools: %s", r.stdout)
			}
			// The printed approval walk-through: bob's payment is held,
			// carol approves it from the CLI, bob's repeat is paid.
			pay := regexp.MustCompile(`OSTIARY_TOKEN=\S+ \S+ mcp call shop.pay_invoice '([^']+)'`).FindStringSubmatch(out.String())
			if pay == nil {
				t.Fatalf("the banner shows no payment: %s", out)
			}
			r = run(as("bob"), "mcp", "call", "shop.pay_invoice", pay[1])
			id := regexp.MustCompile(`apr_[a-z2-7]{26}`).FindString(r.stdout)
			if r.code != ExitError || id == "" || strings.Contains(r.stdout, "paid_eur") {
				t.Fatalf("bob's payment was not held: %+v", r)
			}
			if r := run(as("carol"), "approvals", "list", "--pending").mustOK(t); !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "irreversible-financial") {
				t.Errorf("carol's pending list: %s", r.stdout)
			}
			if r := run(as("bob"), "approvals", "approve", id, "--reason", "mine"); r.code != ExitError || !strings.Contains(r.stderr, "permission denied") {
				t.Errorf("bob approving his own payment: %+v", r)
			}
			if r := run(as("carol"), "approvals", "approve", id, "--reason", "invoice INV-1 checked").mustOK(t); !strings.Contains(r.stdout, "approved") {
				t.Errorf("carol's approval: %s", r.stdout)
			}
			if r := run(as("bob"), "mcp", "call", "shop.pay_invoice", pay[1]).mustOK(t); !strings.Contains(r.stdout, `"paid_eur":120`) {
				t.Errorf("bob's approved payment: %s", r.stdout)
			}
			if r := run(as("carol"), "approvals", "show", id).mustOK(t); !strings.Contains(r.stdout, "(used)") || !strings.Contains(r.stdout, "carol approved") {
				t.Errorf("approvals show: %s", r.stdout)
			}
			if r := run(as("admin"), "audit", "query", "--kind", "approval_record").mustOK(t); !regexp.MustCompile(id + `\s+executed\s+bob\s+shop.pay_invoice`).MatchString(r.stdout) {
				t.Errorf("approval records: %s", r.stdout)
			}
			if r := run(as("admin"), "audit", "query", "--kind", "exception_record", "--user", "bob").mustOK(t); !strings.Contains(r.stdout, "held for approval as "+id) {
				t.Errorf("exception records: %s", r.stdout)
			}
			if r := run(as("admin"), "audit", "query", "--kind", "exception_record", "--event", "x"); r.code != ExitUsage {
				t.Errorf("--kind with --event: %+v", r)
			}
			r = run(as("admin"), "audit", "query", "--event", "tool-call").mustOK(t)
			if !strings.Contains(r.stdout, "tool-not-permitted") {
				t.Errorf("the refusal was not audited: %s", r.stdout)
			}
		} else if strings.Contains(out.String(), "shown once") {
			t.Errorf("a reused directory printed new keys: %s", out)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("demo exited %d: %s", code, errb)
		}
	}
	run(nil, "audit", "verify", "--data", dir).mustOK(t)
}

// serve over HTTPS; the CLI trusts a private CA through OSTIARY_CA_FILE and
// refuses an unknown one.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	var initOut struct {
		APIKey string `json:"api_key"`
	}
	json.Unmarshal([]byte(run(nil, "init", "--data", filepath.Join(dir, "data"), "--json").mustOK(t).stdout), &initOut)
	ca := apptest.NewCA(t)
	cert, key, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	ca.Issue(t, cert, key, 7)
	os.WriteFile(caFile, ca.PEM, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"serve", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key},
			nil, out, errb, func(string) string { return "" })
	}()
	re := regexp.MustCompile(`serving on (https://\S+)`)
	for deadline := time.Now().Add(10 * time.Second); !re.MatchString(out.String()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s %s", out, errb)
		}
	}
	addr := re.FindStringSubmatch(out.String())[1]
	env := map[string]string{"OSTIARY_ADDR": addr, "OSTIARY_TOKEN": initOut.APIKey, "OSTIARY_CA_FILE": caFile}
	if r := run(env, "whoami").mustOK(t); !strings.Contains(r.stdout, "admin") {
		t.Errorf("whoami over HTTPS: %s", r.stdout)
	}
	delete(env, "OSTIARY_CA_FILE")
	if r := run(env, "whoami"); r.code == ExitOK || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("an unknown CA was trusted: %+v", r)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, errb)
	}
}

// The CLI never follows a redirect: its API key stays with the address it
// was given, for admin commands and MCP calls alike.
func TestCLIRefusesRedirects(t *testing.T) {
	var leaked atomic.Int32
	catcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
	}))
	defer catcher.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, catcher.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	env := map[string]string{"OSTIARY_ADDR": redirector.URL, "OSTIARY_TOKEN": "ost_abcdefghijklmnop_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv"}
	for _, args := range [][]string{{"users", "list"}, {"mcp", "tools"}} {
		if r := run(env, args...); r.code == ExitOK {
			t.Errorf("%v followed a redirect: %s", args, r.stdout)
		}
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("the API key reached the redirect target %d times", n)
	}
}
