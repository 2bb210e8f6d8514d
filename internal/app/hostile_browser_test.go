package app_test

// Browsers and hosts: a page may call /mcp only from an allowed origin,
// its preflight is answered, and every refusal is on record.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

func TestHostileBrowser(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://chat.example.com"} })
	up, alice, bob := gatewaySetup(t, s, false)
	// OPTIONS /mcp from an allowed origin, no credentials: 204 with what
	// the browser asked for (before: 401, so no browser client worked).
	req, _ := http.NewRequest("OPTIONS", s.URL+"/mcp", nil)
	req.Header.Set("Origin", "https://chat.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version, mcp-param-id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://chat.example.com" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	// The preflight of a foreign origin is refused, on record.
	req.Header.Set("Origin", "https://evil.example")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 403 {
		t.Errorf("foreign preflight: %d", resp.StatusCode)
	}
	// A response to an allowed origin can be read by its page.
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},` + modern + `}}`
	hs := modernHeaders("tools/call", "fin.lookup")
	hs["Origin"] = "https://chat.example.com"
	r := rpc(t, s, alice, call, hs)
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://chat.example.com" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("allowed origin: %d %v", r.Status, r.Header)
	}
	before := len(up.Calls())
	// A cross-site request that hides its origin (Sec-Fetch-Site without
	// Origin) is refused (before: served).
	hs = modernHeaders("tools/call", "fin.lookup")
	hs["Sec-Fetch-Site"] = "cross-site"
	if r := rpc(t, s, alice, call, hs); r.Status != 403 {
		t.Errorf("cross-site without Origin: %d %s", r.Status, r.Body)
	}
	if n := len(up.Calls()) - before; n != 0 {
		t.Errorf("refused browser requests reached the upstream: %d", n)
	}
	// Refusals on record: the foreign origin, the hidden one, a malformed
	// message, an oversized body and another key's session.
	rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`, nil)
	rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"`+strings.Repeat("x", 2<<20)+`"}}`, nil)
	init := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`, nil)
	rpc(t, s, bob, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, map[string]string{"Mcp-Session-Id": init.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-11-25"})
	reasons := map[string]bool{}
	for _, rec := range records(t, s, audit.Query{Event: "request-refused"}) {
		reasons[rec.Reason] = true
	}
	for _, want := range []string{"origin-not-allowed", "cross-site-without-origin", "message-malformed", "body-too-large", "session-unknown"} {
		if !reasons[want] {
			t.Errorf("no request-refused record with reason %s (have %v)", want, reasons)
		}
	}
}

// A Host that is an IPv4-mapped IPv6 literal is judged like its IPv4 form
// by every check, ours (direct path) and the SDK's (tools/list): the Host
// is rewritten to 127.0.0.1 before either looks. (This held before too; it
// guards the rewrite.)
func TestHostileMappedHost(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	_, alice, _ := gatewaySetup(t, s, false)
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},` + modern + `}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + modern + `}}`,
	} {
		status, got := rawHTTP(t, s, "POST /mcp HTTP/1.1\nHost: [::ffff:127.0.0.1]:"+port+"\nAuthorization: Bearer "+alice+
			"\nContent-Type: application/json\nAccept: application/json, text/event-stream\nMcp-Protocol-Version: 2026-07-28\nConnection: close\n"+
			"Mcp-Method: "+map[bool]string{true: "tools/call", false: "tools/list"}[strings.Contains(body, "tools/call")]+
			map[bool]string{true: "\nMcp-Name: fin.lookup", false: ""}[strings.Contains(body, "tools/call")]+
			"\nContent-Length: "+strconv.Itoa(len(body))+"\n\n"+body)
		if status != 200 {
			t.Errorf("mapped loopback Host: %d %.200s", status, got)
		}
	}
}

// A flood of malformed requests from one key: the budget's burst is on
// record one by one, the rest counted into an aggregated requests-refused
// record, so the audit log is no amplifier. Before, each was unrecorded.
func TestHostileMalformedFlood(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	_, alice, _ := gatewaySetup(t, s, false)
	const n = 120
	for range n {
		rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`, nil)
	}
	single := len(records(t, s, audit.Query{Event: "request-refused"}))
	if single > 25 {
		t.Errorf("%d refusals recorded one by one under a flood", single)
	}
	awaitCounted(t, s, "requests-refused", n-single)
}

// Found by review: refusals before authentication (a repeated header, a
// foreign origin) were each a durable record, and unknown methods skipped
// the key's rate limit. Now the former draw on the source's budget
// (aggregated beyond it) and the latter on the key's.
func TestHostileUnauthenticatedRefusalFlood(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	_, alice, _ := gatewaySetup(t, s, false)
	const n = 60
	for i := range n {
		hs := map[string][]string{"Mcp-Name": {"a", "b"}}
		if i%2 == 1 {
			hs = map[string][]string{"Origin": {"https://evil.example"}}
		}
		withHeaders(t, s, "/mcp", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, hs)
	}
	single := len(records(t, s, audit.Query{Event: "request-refused"}))
	if single > 25 {
		t.Errorf("%d unauthenticated refusals recorded one by one", single)
	}
	awaitCounted(t, s, "requests-refused", n-single)
	limited := 0
	for range 300 {
		if r := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"evil/x"}`, nil); r.Status == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Error("300 unknown methods in a row were never rate-limited")
	}
	if n := len(records(t, s, audit.Query{Event: "method-refused"})); n > 25 {
		t.Errorf("%d method refusals recorded one by one", n)
	}
}

// awaitCounted waits (moving the server's clock past the aggregation
// window) until the aggregated records of event count want refusals in
// all, and fails the test if they never do or count more.
func awaitCounted(t *testing.T, s *apptest.Server, event string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		counted := 0
		for _, r := range records(t, s, audit.Query{Event: event}) {
			c, _ := strconv.Atoi(fmt.Sprint(r.Detail["count"]))
			counted += c
		}
		if counted == want {
			return
		}
		if counted > want || time.Now().After(deadline) {
			t.Fatalf("%s records count %d refusals, want %d", event, counted, want)
		}
		s.Clock.Advance(11 * time.Second)
		time.Sleep(200 * time.Millisecond)
	}
}
