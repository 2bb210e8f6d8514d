package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// The master key is rotated while the server keeps serving: wrapped under
// the new key, both open the vault until the old one is retired, after
// which only the new one does, and the secrets survive every step.
func TestMasterKeyRotation(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": "tok-1", "upstreams": []string{"fin"}}), http.StatusOK)
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
	call("before")

	oldFile := filepath.Join(s.Dir, "keys", "master.key")
	newKeyHex := strings.Repeat("ab", 32)
	newFile := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(newFile, []byte(newKeyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rewrap := func(k string, retire bool, want, keys int) {
		t.Helper()
		r := s.Do("POST", "/api/v1/vault/rewrap", s.AdminKey, map[string]any{"new_master_key": k, "retire_others": retire})
		mustStatus(t, r, want)
		if strings.Contains(string(r.Body), k) {
			t.Errorf("the answer echoes the key: %s", r.Body)
		}
		if want == http.StatusOK {
			var out struct {
				MasterKeys int `json:"master_keys"`
			}
			r.JSON(t, &out)
			if out.MasterKeys != keys {
				t.Errorf("master keys: %d, want %d", out.MasterKeys, keys)
			}
		}
	}
	rewrap("not-hex-"+newKeyHex, false, http.StatusBadRequest, 0)
	rewrap(newKeyHex[:62], false, http.StatusBadRequest, 0)
	rewrap(newKeyHex, false, http.StatusOK, 2)
	call("after wrapping under the new key, no restart")

	// Either key opens the vault now.
	s.Stop()
	s.Restart(func(c *config.Config) { c.MasterKeyFile = oldFile })
	call("restarted on the old key")
	s.Stop()
	s.Restart(func(c *config.Config) { c.MasterKeyFile = newFile })
	call("restarted on the new key")

	// Retired: only the new key opens it.
	rewrap(newKeyHex, true, http.StatusOK, 1)
	s.Stop()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.MasterKeyFile = s.Dir, "127.0.0.1:0", oldFile
	if a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), s.Clock.Now); err == nil {
		a.Close(context.Background())
		t.Fatal("the retired master key still opens the vault")
	} else if !strings.Contains(err.Error(), "does not open with this master key") {
		t.Errorf("start-up with the retired key: %v", err)
	}
	s.Restart(func(c *config.Config) { c.MasterKeyFile = newFile })
	call("restarted on the new key after retiring the old")
	if !up.SawKey("tok-1") {
		t.Error("the upstream never received the secret")
	}

	// Admin only; every attempt on record, never the key.
	setup(t, s, "keeper", []string{"manage-secrets:*"}, "sam", false)
	samKey, _ := newKey(t, s, map[string]any{"user": "sam"})
	mustStatus(t, s.Do("POST", "/api/v1/vault/rewrap", samKey, map[string]any{"new_master_key": hex.EncodeToString(make([]byte, 32))}), http.StatusForbidden)
	recs := records(t, s, audit.Query{Event: "vault-rewrap"})
	if len(recs) != 5 {
		t.Errorf("vault-rewrap records: %d, want 5", len(recs))
	}
	for _, r := range records(t, s, audit.Query{}) {
		if b, _ := json.Marshal(r); strings.Contains(string(b), newKeyHex) || strings.Contains(string(b), newKeyHex[:62]) {
			t.Errorf("an audit record holds the key: %s", b)
		}
	}
}
