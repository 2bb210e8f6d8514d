package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/testutil/oidcop"
)

// TestLogin: 'ostiary login' signs alice in through her browser against a
// real provider; the token is kept 0600 and every admin command uses it,
// including after it expired (refreshed) — and the idp commands map her
// group to the role that lets her list users.
func TestLogin(t *testing.T) {
	op := oidcop.Start(t, oidcop.Config{
		Users:         []oidcop.User{{ID: "u-alice", Username: "alice", Groups: []string{"idm"}}},
		Clients:       []oidcop.Client{{ID: "ostiary-cli", RedirectURIs: []string{"http://127.0.0.1/callback"}}},
		TokenLifetime: 2 * time.Minute,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := apptest.StartWith(t, func(c *config.Config) {
		c.Listen = addr
		c.OIDC = config.OIDC{Issuers: []string{op.URL}, Audience: "http://" + addr + "/mcp"}
	})
	admin := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	run(admin, "roles", "create", "people", "--grant", "manage-identities:*").mustOK(t)
	r := run(admin, "idp", "map", "idm", "people").mustOK(t)
	if !regexp.MustCompile(`idm\s+people`).MatchString(r.stdout) {
		t.Fatalf("idp map: %s", r.stdout)
	}
	if r := run(admin, "idp", "mappings").mustOK(t); !regexp.MustCompile(`idm\s+people\s+\S+\s+admin`).MatchString(r.stdout) {
		t.Fatalf("idp mappings: %s", r.stdout)
	}

	cfgDir := t.TempDir()
	alice := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_CONFIG_DIR": cfgDir}
	if r := run(alice, "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "ostiary login") {
		t.Fatalf("whoami before login: %+v", r)
	}
	out, errb := &syncBuf{}, &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- Run(context.Background(), []string{"login", "--client-id", "ostiary-cli", "--scope", "offline_access"}, nil, out, errb,
			func(k string) string { return alice[k] })
	}()
	urlRE := regexp.MustCompile(`(?m)^  (http://\S+/authorize\?\S+)$`)
	testutil.Eventually(t, 10*time.Second, func() bool { return urlRE.MatchString(out.String()) }, "login printed no URL: %s %s", out, errb)
	redirect, err := op.Browser(context.Background(), urlRE.FindStringSubmatch(out.String())[1], "alice")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(redirect.String()) // the browser lands on the CLI's listener
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := <-done; code != ExitOK || !strings.Contains(out.String(), "as alice") {
		t.Fatalf("login exit %d: %s %s", code, out, errb)
	}
	file := filepath.Join(cfgDir, "login.json")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("login file %v %v", fi, err)
	}
	if r := run(alice, "whoami").mustOK(t); !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "people") {
		t.Fatalf("whoami: %s", r.stdout)
	}
	run(alice, "users", "list").mustOK(t)

	// The access token expires: the next command refreshes it.
	var saved savedLogin
	b, _ := os.ReadFile(file)
	json.Unmarshal(b, &saved)
	if saved.RefreshToken == "" {
		t.Fatal("no refresh token kept")
	}
	old := saved.AccessToken
	saved.Expiry = time.Now().Add(-time.Minute)
	b, _ = json.Marshal(saved)
	os.WriteFile(file, b, 0o600)
	run(alice, "whoami").mustOK(t)
	b, _ = os.ReadFile(file)
	json.Unmarshal(b, &saved)
	if saved.AccessToken == old || !saved.Expiry.After(time.Now()) {
		t.Fatal("the expired token was not refreshed")
	}

	// Removing the mapping takes the role away at once, token unchanged.
	run(admin, "idp", "unmap", "idm", "people").mustOK(t)
	if r := run(alice, "users", "list"); r.code != ExitError || !strings.Contains(r.stderr, "manage-identities") {
		t.Fatalf("users list after unmap: %+v", r)
	}

	// A login file others may read is refused; so is one for another server.
	os.Chmod(file, 0o644)
	if r := run(alice, "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "readable by others") {
		t.Fatalf("world-readable login file: %+v", r)
	}
	os.Chmod(file, 0o600)
	other := map[string]string{"OSTIARY_ADDR": "http://127.0.0.1:1", "OSTIARY_CONFIG_DIR": cfgDir}
	if r := run(other, "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "not http://127.0.0.1:1") {
		t.Fatalf("login file for another server: %+v", r)
	}
	run(alice, "logout").mustOK(t)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("logout left the file")
	}
}
