package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
)

// The exit code of each kind of outcome, pinned: 0 success, 1 the
// operation failed, 2 a bad command line, 3 the audit chain is broken.
func TestExitCodes(t *testing.T) {
	// A program the server allows as a stdio upstream, removed once the
	// server runs: the "missing stdio binary" an admin may meet.
	gone := filepath.Join(t.TempDir(), "gone-server")
	if err := os.WriteFile(gone, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := apptest.StartWith(t, func(c *config.Config) { c.StdioAllow = append(c.StdioAllow, gone) })
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()
	// An upstream that takes the connection and answers nothing.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// An upstream that works until it is switched off.
	up := apptest.NewUpstream(t, s, "flaky", false)
	var down atomic.Bool
	proxy := reverseProxy(t, up.URL)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	run(env, "upstreams", "add", "flaky", "--url", flaky.URL+"/mcp", "--allow-private").mustOK(t)
	run(env, "roles", "create", "caller", "--grant", "invoke:flaky.*").mustOK(t)
	run(env, "users", "create", "alice", "--role", "caller").mustOK(t)
	var aliceKey adminapi.CreatedKey
	if err := json.Unmarshal([]byte(run(env, "keys", "create", "--user", "alice", "--json").mustOK(t).stdout), &aliceKey); err != nil {
		t.Fatal(err)
	}
	alice := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": aliceKey.APIKey}

	// A data directory whose chain was altered, and a key that did not sign it.
	tampered := filepath.Join(t.TempDir(), "data")
	run(nil, "init", "--data", tampered).mustOK(t)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(tampered, "ostiary.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE audit_records SET target = 'user:mallory' WHERE seq = 1"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(other)
	swapped := filepath.Join(t.TempDir(), "other.pub")
	os.WriteFile(swapped, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	notAKey := filepath.Join(t.TempDir(), "not-a-key.pub")
	os.WriteFile(notAKey, []byte("hello\n"), 0o644)

	cases := []struct {
		name   string
		setup  func()
		env    map[string]string
		args   []string
		code   int
		stderr string // a word the message must hold ("" for none)
	}{
		{"version", nil, nil, []string{"version"}, ExitOK, ""},
		{"--version", nil, nil, []string{"--version"}, ExitOK, ""},
		{"help", nil, nil, []string{"--help"}, ExitOK, ""},
		{"a group alone shows its help", nil, nil, []string{"users"}, ExitOK, ""},
		{"success", nil, env, []string{"whoami"}, ExitOK, ""},
		{"a working sync", nil, env, []string{"upstreams", "sync", "flaky"}, ExitOK, ""},
		{"a tool call", nil, alice, []string{"mcp", "call", "flaky.lookup", `{"id":"C-1"}`, "--json"}, ExitOK, ""},
		{"audit verify of a whole chain", nil, nil, []string{"audit", "verify", "--data", s.Dir}, ExitOK, ""},

		{"unknown command", nil, nil, []string{"nonsense"}, ExitUsage, `unknown command "nonsense"`},
		{"unknown subcommand", nil, env, []string{"users", "lst"}, ExitUsage, "did you mean list?"},
		{"unknown subcommand, two deep", nil, env, []string{"audit", "qeury"}, ExitUsage, "did you mean query?"},
		{"unknown flag", nil, env, []string{"users", "list", "--bogus"}, ExitUsage, "unknown flag"},
		{"missing argument", nil, env, []string{"users", "create"}, ExitUsage, "accepts 1 arg"},
		{"arguments that are not JSON", nil, env, []string{"mcp", "call", "flaky.lookup", "{"}, ExitUsage, "ARGUMENTS-JSON"},
		{"an unknown audit event", nil, env, []string{"audit", "query", "--event", "tool-cal"}, ExitUsage, "did you mean tool-call?"},
		{"version takes no arguments", nil, nil, []string{"version", "now"}, ExitUsage, "unknown command"},

		{"server not running", nil, map[string]string{"OSTIARY_ADDR": refused, "OSTIARY_TOKEN": s.AdminKey}, []string{"whoami"}, ExitError, "cannot reach ostiary"},
		{"a refused request", nil, env, []string{"users", "create", "alice"}, ExitError, "exists"},
		{"a refused tool call", nil, alice, []string{"mcp", "call", "flaky.nope"}, ExitError, "unknown tool"},
		{"add: connection refused", nil, env, []string{"upstreams", "add", "down", "--url", refused, "--allow-private"}, ExitError, "refused"},
		{"add: no answer", nil, env, []string{"upstreams", "add", "mute", "--url", "http://" + mute.Addr().String() + "/mcp", "--allow-private"}, ExitError, "sync of mute failed"},
		{"add: missing stdio binary", nil, env, []string{"upstreams", "add", "gone", "--command", gone}, ExitError, "gone"},
		{"add --json of a broken upstream", nil, env, []string{"upstreams", "add", "down2", "--url", refused, "--allow-private", "--json"}, ExitError, "sync of down2 failed"},
		{"a failed sync", func() { down.Store(true) }, env, []string{"upstreams", "sync", "flaky"}, ExitError, "sync of flaky failed"},
		{"a tool call the upstream failed", nil, alice, []string{"mcp", "call", "flaky.lookup", `{"id":"C-1"}`}, ExitError, "the tool reported an error"},
		{"a tool call the upstream failed, --json", nil, alice, []string{"mcp", "call", "flaky.lookup", `{"id":"C-1"}`, "--json"}, ExitError, "the tool reported an error"},
		{"a failed sync --json", nil, env, []string{"upstreams", "sync", "flaky", "--json"}, ExitError, "sync of flaky failed"},
		{"audit verify: unreadable key", nil, nil, []string{"audit", "verify", "--data", s.Dir, "--public-key", notAKey}, ExitError, "not a PEM public key"},

		{"audit verify: a swapped key", nil, nil, []string{"audit", "verify", "--data", s.Dir, "--public-key", swapped}, ExitTampered, "not by"},
		{"audit verify: an altered index record", nil, nil, []string{"audit", "verify", "--data", tampered, "--index"}, ExitTampered, "record 1"},
		{"audit verify: an altered log", func() { tamperLog(t, tampered, "system-init") }, nil, []string{"audit", "verify", "--data", tampered}, ExitTampered, "not a complete batch"},
	}
	for _, c := range cases {
		if c.setup != nil {
			c.setup()
		}
		r := run(c.env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("%s: ostiary %s: exit %d, stderr %q; want exit %d and %q\nstdout: %s", c.name, strings.Join(c.args, " "), r.code, r.stderr, c.code, c.stderr, r.stdout)
		}
	}
	if r := run(nil, "version"); strings.TrimSpace(r.stdout) != "ostiary version "+app.Version {
		t.Errorf("version printed %q", r.stdout)
	}
}
