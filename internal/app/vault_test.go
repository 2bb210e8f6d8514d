//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still relayed; this test proves it is redacted.

package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

const canary = "canary-3f9a7c1e5b0d42"

// A canary secret injected into an upstream header reaches the upstream,
// and nothing else: a hostile upstream echoing it in its result, a log
// message and an error gets it redacted, and it is in no audit record, no
// database row in clear, no admin API answer and no log line.
func TestVaultCanary(t *testing.T) {
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddLeaker()
	r := s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}})
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), canary) {
		t.Fatal("the API returned the secret")
	}
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "leaky", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	var mu sync.Mutex
	var logs []string
	alice, err := s.ClientWith(t, key, "2025-11-25", &mcp.ClientOptions{LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
		mu.Lock()
		logs = append(logs, fmt.Sprint(r.Params.Data))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"})
	res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.leak"})
	if err != nil {
		t.Fatal(err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if strings.Contains(text, canary) || !strings.Contains(text, "[REDACTED secret:fin-key]") {
		t.Errorf("result: %q", text)
	}
	if !up.SawKey(canary) {
		t.Error("the upstream did not receive the injected secret")
	}
	res, err = alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.leak_error"})
	b, _ := json.Marshal(res)
	if err != nil || !res.IsError || strings.Contains(string(b), canary) || !strings.Contains(string(b), "REDACTED") {
		t.Errorf("error result: %s %v", b, err)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if len(logs) == 0 || strings.Contains(strings.Join(logs, " "), canary) {
		t.Errorf("log messages: %q", logs)
	}
	mu.Unlock()

	// Prompts and resources are upstream results too.
	pr, err := alice.GetPrompt(ctx, &mcp.GetPromptParams{Name: "fin.leak_prompt"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(pr); strings.Contains(string(b), canary) || !strings.Contains(string(b), "[REDACTED secret:fin-key]") {
		t.Errorf("prompt: %s", b)
	}
	rr, err := alice.ReadResource(ctx, &mcp.ReadResourceParams{URI: "fixture://leak"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(rr); strings.Contains(string(b), canary) || !strings.Contains(string(b), "[REDACTED secret:fin-key]") {
		t.Errorf("resource: %s", b)
	}
	if rr.CacheScope != "private" {
		t.Errorf("a governed resource is cacheable as %q", rr.CacheScope)
	}

	// The access is on record, by name and version, never by value.
	acc := records(t, s, audit.Query{Event: "secret-access", Outcome: audit.Success})
	if len(acc) == 0 || acc[0].Target != "secret:fin-key" || acc[0].Detail["version"] == nil || acc[0].Actor != "alice" {
		t.Errorf("secret-access records: %+v", acc)
	}
	r = s.Do("GET", "/api/v1/secrets", s.AdminKey, nil)
	if r.Status != 200 || strings.Contains(string(r.Body), canary) || !strings.Contains(string(r.Body), `"version":1`) {
		t.Errorf("secrets list: %s", r.Body)
	}
	s.Stop()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "ostiary.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"audit_records", "secrets", "upstreams", "vault_wraps"} {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var sb strings.Builder
		n := 0
		for rows.Next() {
			rows.Scan(ptrs...)
			for _, v := range vals {
				fmt.Fprintf(&sb, "%s ", v)
			}
			n++
		}
		rows.Close()
		dump := sb.String()
		if n == 0 {
			t.Errorf("table %s is empty: the scan proves nothing", table)
		}
		if strings.Contains(dump, canary) {
			t.Errorf("the canary is stored in clear in %s", table)
		}
	}
	if strings.Contains(s.Log.String(), canary) {
		t.Error("the canary reached the operational log")
	}
}

// A secret is injected only into the upstreams it is scoped to.
func TestVaultScope(t *testing.T) {
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/other-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"hr"}}), http.StatusOK)
	r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:other-key}"}})
	var added struct {
		Sync struct{ Error string } `json:"sync"`
	}
	r.JSON(t, &added)
	if !strings.Contains(added.Sync.Error, "not scoped") || up.SawKey(canary) {
		t.Errorf("an out-of-scope secret was injected: %s", r.Body)
	}
	if recs := records(t, s, audit.Query{Event: "secret-access", Outcome: audit.Denied}); len(recs) == 0 {
		t.Error("the refused access was not recorded")
	}
}

// The vault does not open with another master key, and says so at start-up.
func TestVaultWrongMasterKey(t *testing.T) {
	s := apptest.Start(t)
	s.Stop()
	other := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(other, []byte(strings.Repeat("ab", 32)), 0o600)
	cfg := serveConfig(s.Dir)
	cfg.MasterKeyFile = other
	_, err := openWith(cfg)
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("opened with the wrong master key: %v", err)
	}
}
