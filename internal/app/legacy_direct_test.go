package app_test

import (
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/app/apptest"
)

// A plain tools/call on a 2025 session is answered on the gateway's
// direct path (one application/json response); the same call asking for
// progress goes through the SDK's stateful handler (an event stream).
// Both give the same JSON-RPC answer for every outcome, with the same
// records; a session whose client may be asked questions, or that set a
// log level, keeps the SDK's path.
func TestDirectLegacyCallMatchesSDK(t *testing.T) {
	t.Parallel()
	for _, stateless := range []bool{true, false} {
		t.Run(fmt.Sprintf("stateless upstream %t", stateless), func(t *testing.T) { testDirectLegacyCall(t, stateless) })
	}
}

// legacySession opens a 2025-11-25 session for key, declaring caps.
func legacySession(t *testing.T, s *apptest.Server, key, caps string) map[string]string {
	t.Helper()
	r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":`+caps+`,"clientInfo":{"name":"raw","version":"1"}}}`,
		map[string]string{"Mcp-Protocol-Version": "2025-11-25"})
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("no session: %d %s", r.Status, r.Body)
	}
	h := map[string]string{"Mcp-Protocol-Version": "2025-11-25", "Mcp-Session-Id": sid}
	if r := rpc(t, s, key, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, h); r.Status != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", r.Status, r.Body)
	}
	// The SDK handles a notification after answering its POST: a request
	// answered is one its handlers have seen (the gateway learns the
	// session's server session from them; until then calls take the SDK's
	// path).
	if r := rpc(t, s, key, `{"jsonrpc":"2.0","id":"ping","method":"ping"}`, h); r.Status != http.StatusOK {
		t.Fatalf("ping: %d %s", r.Status, r.Body)
	}
	return h
}

func testDirectLegacyCall(t *testing.T, statelessUpstream bool) {
	s := apptest.Start(t)
	up, aliceKey, bobKey := gatewaySetup(t, s, statelessUpstream)
	sessions := map[string]map[string]string{aliceKey: legacySession(t, s, aliceKey, `{}`), bobKey: legacySession(t, s, bobKey, `{}`)}
	body := func(name, args, meta string) string {
		return `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"` + name + `","arguments":` + args + meta + `}}`
	}
	const streaming = `,"_meta":{"progressToken":"p1"}`
	for _, c := range []struct {
		name, key, tool, args, want string
	}{
		{"allowed", aliceKey, "fin.lookup", `{"id":"7"}`, `"name":"Ada Lovelace"`},
		{"big integer kept", aliceKey, "fin.lookup", `{"id":"12345678901234567890"}`, `12345678901234567890`},
		{"not permitted", bobKey, "fin.pay", `{"amount":1,"to":"x"}`, `unknown tool`},
		{"hidden", aliceKey, "fin.delete_all", `{}`, `unknown tool`},
		{"missing", aliceKey, "fin.nope", `{}`, `unknown tool`},
		{"bad arguments", aliceKey, "fin.lookup", `{"id":7}`, `invalid arguments`},
		{"no arguments", aliceKey, "fin.lookup", `null`, `invalid arguments`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := maps.Clone(sessions[c.key])
			h["X-Request-ID"] = "direct-" + strings.ReplaceAll(c.name, " ", "-")
			fast := rpc(t, s, c.key, body(c.tool, c.args, ""), h)
			fastRecords := h["X-Request-ID"]
			h["X-Request-ID"] = "sdk-" + strings.ReplaceAll(c.name, " ", "-")
			slow := rpc(t, s, c.key, body(c.tool, c.args, streaming), h)
			if ct := fast.Header.Get("Content-Type"); fast.Status != 200 || ct != "application/json" {
				t.Fatalf("direct path: %d %s %s", fast.Status, ct, fast.Body)
			}
			if ct := slow.Header.Get("Content-Type"); slow.Status != 200 || ct != "text/event-stream" {
				t.Fatalf("SDK path: %d %s %s", slow.Status, ct, slow.Body)
			}
			if !strings.Contains(string(fast.Body), c.want) {
				t.Errorf("direct path answered %s, want %s", fast.Body, c.want)
			}
			if f, sl := rpcMessage(t, fast), rpcMessage(t, slow); !reflect.DeepEqual(f, sl) {
				t.Errorf("the paths differ:\ndirect %s\nSDK    %v", fast.Body, sl)
			}
			if f, sl := onRecord(t, s, fastRecords), onRecord(t, s, h["X-Request-ID"]); len(f) == 0 || !slices.Equal(f, sl) {
				t.Errorf("records differ:\ndirect %q\nSDK    %q", f, sl)
			}
		})
	}
	if calls := up.Calls(); len(calls) < 4 || fmt.Sprint(calls[2].Args["id"]) != "12345678901234567890" {
		t.Errorf("upstream saw %+v", calls)
	}

	// Sessions the SDK must serve: a client that may be asked, and one
	// that set a log level.
	asked := legacySession(t, s, aliceKey, `{"sampling":{},"elicitation":{}}`)
	logging := legacySession(t, s, aliceKey, `{}`)
	if r := rpc(t, s, aliceKey, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}`, logging); r.Status != 200 {
		t.Fatalf("setLevel: %d %s", r.Status, r.Body)
	}
	for name, h := range map[string]map[string]string{"client with capabilities": asked, "log level set": logging} {
		if r := rpc(t, s, aliceKey, body("fin.lookup", `{"id":"7"}`, ""), h); r.Status != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("%s: %d %s %s, want the SDK's event stream", name, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
}
