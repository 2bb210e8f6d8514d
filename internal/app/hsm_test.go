package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/vault/hsm/hsmtest"
)

// The vault's master key in an HSM (SoftHSM2), end to end: a server on a
// key file moves to the HSM (both configured, rewrap --hsm, restart on the
// HSM alone, retire the file's wrapping), serves its secrets after a
// restart (the data key unwrapped inside the HSM), and moves back to a
// file. A wrong PIN, a missing token or a key that does not open the
// vault stop start-up with a plain message, and nothing is served.
func TestMasterKeyInHSM(t *testing.T) { // not parallel: hsmtest points SOFTHSM2_CONF at the test's token with t.Setenv
	tok := hsmtest.New(t, "ostiary", "1234")
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := apptest.Start(t)
	fileKey := filepath.Join(s.Dir, "keys", "master.key")
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": "tok-hsm-1", "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "reader", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	call := func(when string) {
		t.Helper()
		cs, err := s.Client(t, key, "")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		defer cs.Close()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}})
		if err != nil || res.IsError {
			t.Fatalf("%s: the call failed: %+v %v", when, res, err)
		}
	}
	withHSM := func(file string) func(*config.Config) {
		return func(c *config.Config) {
			c.MasterKeyPKCS11, c.PKCS11Token, c.PKCS11Key, c.PKCS11PINFile = tok.Module, tok.Label, "vault-master", pinFile
			c.MasterKeyFile = file
		}
	}
	rewrap := func(body map[string]any, keys int) {
		t.Helper()
		r := s.Do("POST", "/api/v1/vault/rewrap", s.AdminKey, body)
		mustStatus(t, r, http.StatusOK)
		var out struct {
			MasterKeys int `json:"master_keys"`
		}
		r.JSON(t, &out)
		if out.MasterKeys != keys {
			t.Errorf("%v: %d master keys, want %d", body, out.MasterKeys, keys)
		}
	}
	call("on the key file")
	mustStatus(t, s.Do("POST", "/api/v1/vault/rewrap", s.AdminKey, map[string]any{"hsm": true}), http.StatusBadRequest) // no HSM configured

	// File → HSM.
	s.Stop()
	s.Restart(withHSM(fileKey))
	if !strings.Contains(s.Log.String(), "generated the vault master key in the HSM") {
		t.Errorf("the HSM key was not generated: %s", s.Log.String())
	}
	rewrap(map[string]any{"hsm": true}, 2)
	s.Stop()
	s.Restart(withHSM("")) // the HSM alone
	call("on the HSM alone")
	rewrap(map[string]any{"hsm": true, "retire_others": true}, 1)
	s.Stop()
	if err := s.TryRestart(func(c *config.Config) { c.MasterKeyFile = fileKey }); err == nil || !strings.Contains(err.Error(), "does not open with this master key") {
		t.Fatalf("the retired file key after moving to the HSM: %v", err)
	}
	s.Restart(withHSM(""))
	call("on the HSM after retiring the file key")

	// HSM → file.
	back := filepath.Join(t.TempDir(), "back.key")
	backHex := strings.Repeat("5a", 32)
	if err := os.WriteFile(back, []byte(backHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rewrap(map[string]any{"new_master_key": backHex, "retire_others": true}, 1)
	s.Stop()
	if err := s.TryRestart(withHSM("")); err == nil || !strings.Contains(err.Error(), "does not open with this master key") {
		t.Fatalf("the HSM after moving back to a file: %v", err)
	}
	s.Restart(func(c *config.Config) { c.MasterKeyFile = back })
	call("back on a key file")
	if !up.SawKey("tok-hsm-1") {
		t.Error("the upstream never received the secret")
	}
	s.Stop()

	// Start-up refused plainly, before anything listens.
	wrongPIN := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongPIN, []byte("0000\n"), 0o600)
	for name, c := range map[string]struct {
		tune func(*config.Config)
		want string
	}{
		"a wrong PIN":                     {func(c *config.Config) { withHSM("")(c); c.PKCS11PINFile = wrongPIN }, `token "ostiary" refused the PIN`},
		"a missing token":                 {func(c *config.Config) { withHSM("")(c); c.PKCS11Token = "gone" }, `no token labelled "gone"`},
		"a PIN in the environment, wrong": {func(c *config.Config) { withHSM("")(c); c.PKCS11PINFile, c.PKCS11PIN = "", "7777" }, "refused the PIN"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := config.Default()
		cfg.DataDir, cfg.Listen = s.Dir, addr
		c.tune(&cfg)
		a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), s.Clock.Now)
		if err == nil {
			a.Close(context.Background())
			t.Errorf("%s: the server opened", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "0000") || strings.Contains(err.Error(), "7777") {
			t.Errorf("%s: %v", name, err)
		}
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			t.Errorf("%s: something listens on %s", name, addr)
		}
	}
}
