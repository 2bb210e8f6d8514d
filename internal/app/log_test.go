package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
)

// sdkChatter are the MCP SDK's routine lines, one or more per request.
var sdkChatter = []string{"server connecting", "server session connected", "server session disconnected", "session initialized"}

type logLine map[string]any

func logLines(t *testing.T, s *apptest.Server) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(s.Logs()), "\n") {
		var m logLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line that is not JSON with --log-format json: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// The operational log of a short run at info: the SDK's session chatter
// is gone (it is debug), every line written while answering a request
// names the request, each MCP request has one line, and no credential of
// any kind appears: API keys used, refused or created, a vault secret, the
// Authorization header.
func TestOperationalLog(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.LogFormat = "json" })
	_, alice, bob := gatewaySetup(t, s, false)
	const vaultSecret = "vault-canary-7f3a9c"
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": vaultSecret, "upstreams": []string{"fin"}}), http.StatusOK)

	// A 2025-era session client, a 2026 stateless call, a refused call and a
	// forged key.
	cs, err := s.Client(t, alice, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-1"}}); err != nil {
		t.Fatal(err)
	}
	cs.Close()
	h := modernHeaders("tools/call", "fin.lookup")
	h["X-Request-ID"] = "req-modern-1"
	r := rpc(t, s, bob, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"C-2"},`+modern+`}}`, h)
	mustStatus(t, r, http.StatusOK)
	h["X-Request-ID"] = "req-refused-1"
	rpc(t, s, bob, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fin.pay","arguments":{"amount":1,"to":"x"},`+modern+`}}`, h)
	const forged = "ost_aaaaaaaaaaaaaaaa_forgedsecretforgedsecretforgedsecret"
	h["X-Request-ID"] = "req-forged-1"
	rpc(t, s, forged, `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{`+modern+`}}`, modernHeaders("tools/list", ""))
	s.Do("GET", "/api/v1/users", "Bearer-not-a-key", nil)
	// An upstream that cannot be listed: the sync's warning is the admin
	// request's.
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "gone", "url": "http://127.0.0.1:1/mcp", "allow_private": true}), http.StatusCreated)
	if !strings.Contains(s.Logs(), "upstream sync failed") {
		t.Error("no line for the failed sync")
	}

	lines := logLines(t, s)
	text := s.Logs()
	for _, secret := range []string{alice, bob, s.AdminKey, forged, vaultSecret, secretPart(alice), secretPart(bob), secretPart(s.AdminKey), secretPart(forged)} {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds a credential %.12s…", secret)
		}
	}
	// Lines that concern the server, not one request.
	lifecycle := map[string]bool{"ostiary serving": true}
	var modernLine logLine
	for _, l := range lines {
		msg, _ := l["msg"].(string)
		for _, c := range sdkChatter {
			if msg == c {
				t.Errorf("SDK chatter at %v: %v", l["level"], l)
			}
		}
		if id, _ := l["request_id"].(string); id == "" && !lifecycle[msg] {
			t.Errorf("a line without its request id: %v", l)
		}
		if msg == "mcp request" && l["request_id"] == "req-modern-1" {
			modernLine = l
		}
	}
	if modernLine == nil || modernLine["status"] != float64(200) || modernLine["mcp_method"] != "tools/call" || modernLine["http_method"] != "POST" {
		t.Errorf("the access line of req-modern-1: %v", modernLine)
	}
	n := 0
	for _, l := range lines {
		if l["msg"] == "mcp request" {
			n++
		}
	}
	if n < 4 {
		t.Errorf("%d mcp request lines for at least 4 MCP requests", n)
	}
}

// At debug, the SDK's chatter is still there, as debug lines.
func TestSDKChatterIsDebug(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.LogFormat, c.LogLevel = "json", slog.LevelDebug })
	_, alice, _ := gatewaySetup(t, s, false)
	rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{`+modern+`}}`, modernHeaders("tools/list", ""))
	seen := false
	for _, l := range logLines(t, s) {
		if l["msg"] == "server session connected" {
			seen = true
			if l["level"] != "DEBUG" {
				t.Errorf("SDK chatter at %v", l["level"])
			}
		}
	}
	if !seen {
		t.Error("no SDK session line at debug")
	}
}

// secretPart is the secret of ost_<id>_<secret>.
func secretPart(key string) string {
	if i := strings.LastIndexByte(key, '_'); i > 0 {
		return key[i+1:]
	}
	return key
}
