//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still relayed; this test proves it is redacted.

package app_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/testutil"
)

const canary = "canary-3f9a7c1e5b0d42"

// A canary secret injected into an upstream header reaches the upstream,
// and nothing else: a hostile upstream echoing it in its result, a log
// message and an error gets it redacted, and it is in no audit record, no
// database row in clear, no admin API answer and no log line.
func TestVaultCanary(t *testing.T) {
	t.Parallel()
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
	testutil.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(logs) == 1 }, "the tool's log message was not relayed")
	mu.Lock()
	if len(logs) != 1 || strings.Contains(strings.Join(logs, " "), canary) {
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
	t.Parallel()
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
	t.Parallel()
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

// A secret has a value per environment, and a key's environment picks the
// one its calls get: over HTTP per request, over stdio per process (the
// same user in two environments has two). A key whose environment has no
// value reaches nothing, on record.
func TestVaultEnvironments(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	const devValue, prodValue = "canary-default-71c2", "canary-prod-9e04"
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": devValue, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": prodValue, "upstreams": []string{"fin"}, "environment": "prod"}), http.StatusOK)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": "x", "upstreams": []string{"fin"}, "environment": "Prod!"}), http.StatusBadRequest)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/shop-token", s.AdminKey, map[string]any{"value": devValue, "upstreams": []string{"shop"}}), http.StatusOK)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/shop-token", s.AdminKey, map[string]any{"value": prodValue, "upstreams": []string{"shop"}, "environment": "prod"}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "shop", "command": []string{os.Args[0], "demo-upstream"},
		"env": map[string]string{"SHOP_TOKEN": "${secret:shop-token}"}}), http.StatusCreated)
	setup(t, s, "ops", []string{"invoke:fin.*", "invoke:shop.*"}, "alice", false)
	mustStatus(t, s.Do("POST", "/api/v1/keys", s.AdminKey, map[string]any{"user": "alice", "environment": "PROD"}), http.StatusBadRequest)
	keys := map[string]string{}
	for _, env := range []string{"", "prod", "dev"} {
		body := map[string]any{"user": "alice"}
		if env != "" {
			body["environment"] = env
		}
		keys[env], _ = newKey(t, s, body)
	}
	ctx := context.Background()
	want := map[string]string{"": devValue, "prod": prodValue}
	for _, env := range []string{"", "prod", "dev"} {
		cs, err := s.Client(t, keys[env], "")
		if err != nil {
			t.Fatal(err)
		}
		before := len(up.Calls())
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-7"}})
		calls := up.Calls()
		if env == "dev" {
			if err == nil && !res.IsError || len(calls) != before {
				t.Errorf("a dev key without a dev value reached the upstream: %+v %v", res, err)
			}
		} else if err != nil || res.IsError || len(calls) != before+1 {
			t.Errorf("env %q: %+v %v", env, res, err)
		} else if c := calls[len(calls)-1]; c.APIKey != want[env] || c.Identity.Env != cmp.Or(env, "default") {
			t.Errorf("env %q: the upstream got key %q, assertion env %q", env, c.APIKey, c.Identity.Env)
		}
		res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "shop.lookup_order", Arguments: map[string]any{"order_id": "A-1001"}})
		if ok := err == nil && !res.IsError; ok != (env != "dev") {
			t.Errorf("env %q: stdio call %+v %v", env, res, err)
		}
	}
	// Refused injections say nothing of the upstream's health: they are
	// not retried and do not open its circuit for everyone else.
	devRefusals := func() int {
		n := 0
		for _, r := range records(t, s, audit.Query{Event: "secret-access", Actor: "alice", Target: "secret:fin-key"}) {
			if r.Detail["environment"] == "dev" {
				n++
			}
		}
		return n
	}
	dev, err := s.Client(t, keys["dev"], "")
	if err != nil {
		t.Fatal(err)
	}
	base := devRefusals()
	// pay is not read-only, so never retried: one attempt's refusals (a
	// connection attempt may make more than one request).
	dev.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 1, "to": "x"}})
	perCall := devRefusals() - base
	base += perCall
	for range 6 {
		dev.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-7"}})
	}
	cs, err := s.Client(t, keys[""], "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-7"}}); err != nil || res.IsError {
		t.Errorf("after refused dev calls, a default call failed: %+v %v", res, err)
	}
	spawns := 0
	for _, r := range records(t, s, audit.Query{Event: "upstream-spawn", Actor: "alice"}) {
		if r.Target == "upstream:shop" {
			spawns++
		}
	}
	if spawns != 2 { // default and prod; dev was refused before a process started
		t.Errorf("alice's stdio spawns: %d, want one per environment", spawns)
	}
	if n := devRefusals() - base; perCall == 0 || n != 6*perCall {
		t.Errorf("%d refused accesses for 6 read-only dev calls to fin, %d for one: retried?", n, perCall)
	}
	got := map[string]audit.Outcome{}
	for _, r := range records(t, s, audit.Query{Event: "secret-access", Actor: "alice"}) {
		got[fmt.Sprint(r.Target, " ", r.Detail["environment"])] = r.Outcome
	}
	for _, k := range []string{"secret:fin-key default", "secret:fin-key prod", "secret:shop-token default", "secret:shop-token prod"} {
		if got[k] != audit.Success {
			t.Errorf("access %s: %q (all: %v)", k, got[k], got)
		}
	}
	if got["secret:fin-key dev"] != audit.Denied || got["secret:shop-token dev"] != audit.Denied {
		t.Errorf("the dev accesses were not recorded as refused: %v", got)
	}
	var list struct{ Secrets []map[string]any }
	s.Do("GET", "/api/v1/secrets", s.AdminKey, nil).JSON(t, &list)
	if len(list.Secrets) != 4 {
		t.Errorf("secrets list: %+v", list.Secrets)
	}
}

// An upstream that answers with a redirect does not get Ostiary to send
// its injected secret, or the caller's identity, to another host: the call
// fails, in both eras, and the other host sees nothing.
func TestUpstreamRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", true)
	var caught atomic.Int32
	catcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { caught.Add(1) }))
	t.Cleanup(catcher.Close)
	target, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	var redirect atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirect.Load() {
			http.Redirect(w, r, catcher.URL+"/mcp", http.StatusTemporaryRedirect)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": front.URL + "/mcp", "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "readers", []string{"invoke:fin.lookup"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	modern, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := s.Client(t, key, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	redirect.Store(true)
	for name, cs := range map[string]*mcp.ClientSession{"2026-07-28": modern, "2025-11-25": legacy} {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}})
		if err == nil && !res.IsError {
			t.Errorf("%s: a redirected call succeeded: %+v", name, res)
		}
	}
	if n := caught.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
}

// An upstream that quotes its injected secret in a question to the client
// gets it redacted, whether the client takes requests (2025) or is asked
// through an input_required result (2026-07-28).
func TestVaultRedactsQuestions(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddLeaker()
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "leaky", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	allowQuestions(t, s, "fin.leak_ask", true, false) // its upstream asks the user
	for _, version := range []string{"2025-11-25", ""} {
		var asked string
		cs, err := s.ClientWith(t, key, version, &mcp.ClientOptions{
			ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				asked = r.Params.Message
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.leak_ask"}); err != nil {
			t.Fatal(err)
		}
		if asked == "" || strings.Contains(asked, canary) || !strings.Contains(asked, "[REDACTED secret:fin-key]") {
			t.Errorf("%q client was asked %q", version, asked)
		}
	}
}

// A tool definition that quotes the secret injected into the listing's
// requests is pinned and shown redacted.
func TestVaultRedactsDefinitions(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddDescribed(canary)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "readers", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var desc string
	for _, tool := range res.Tools {
		if tool.Name == "fin.described" {
			desc = tool.Description
		}
	}
	if desc == "" || strings.Contains(desc, canary) || !strings.Contains(desc, "[REDACTED secret:fin-key]") {
		t.Errorf("described as %q", desc)
	}
	if r := s.Do("GET", "/api/v1/tools", s.AdminKey, nil); strings.Contains(string(r.Body), canary) {
		t.Error("the catalog holds the secret")
	}
}
