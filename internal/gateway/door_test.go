package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/govern"
)

const ping = `{"jsonrpc":"2.0","id":1,"method":"ping"}`

// Every request is authenticated by itself, and every failure gets the
// same 401 pointing at the resource metadata; only the record tells the
// reasons apart. A session id is no credential.
func TestUnauthenticated(t *testing.T) {
	d := newDoor(t)
	sid := d.session(t, aliceKey)
	var first string
	for _, c := range []struct {
		name, authorization string
		h                   http.Header
		reason              string
	}{
		{"missing", "", nil, authn.ReasonMissing},
		{"other scheme", "Basic YWxpY2U6YWxpY2U=", nil, authn.ReasonMalformed},
		{"unknown key", "Bearer nobody", nil, authn.ReasonUnknown},
		{"a session without its key", "", legacy(sid), authn.ReasonMissing},
		{"a 2026-07-28 call", "", modern("tools/call", "shop.lookup"), authn.ReasonMissing},
	} {
		h := http.Header{"X-Request-Id": {idOf("unauth", c.name)}}
		for k, v := range c.h {
			h[k] = v
		}
		if c.authorization != "" {
			h.Set("Authorization", c.authorization)
		}
		body := ping
		if c.h != nil && c.h.Get("Mcp-Method") == "tools/call" {
			body = callBody("shop.lookup", `{}`, modernMeta)
		}
		r := d.post(t, "", body, h)
		if r.Code != http.StatusUnauthorized {
			t.Fatalf("%s: %d %s", c.name, r.Code, r.Body)
		}
		if got := r.Header().Get("WWW-Authenticate"); got != `Bearer resource_metadata="http://example.com/.well-known/oauth-protected-resource/mcp"` {
			t.Errorf("%s: WWW-Authenticate %q", c.name, got)
		}
		if first == "" {
			first = r.Body.String()
		} else if r.Body.String() != first {
			t.Errorf("%s: %s differs from %s", c.name, r.Body, first)
		}
		recs := d.audit.request(h.Get("X-Request-Id"))
		if len(recs) != 1 || recs[0].Event != audit.EventAuthnFailure || recs[0].Reason != c.reason {
			t.Errorf("%s: recorded %+v, want one authn-failure %s", c.name, recs, c.reason)
		}
	}
	if code, msg := rpcErrorOf(t, d.post(t, "", ping, nil)); code != jsonrpc.CodeInvalidRequest || msg != "authentication required" {
		t.Errorf("the 401's message: %v %q", code, msg)
	}
	if d.up.count() != 0 {
		t.Error("an unauthenticated call reached the upstream")
	}
	// A Host that could forge the metadata URL is not echoed.
	r := httptest.NewRequest("POST", "/mcp", strings.NewReader(ping))
	r.Host = `evil.example"/x`
	if got := d.serve(r, "", nil).Header().Get("WWW-Authenticate"); !strings.Contains(got, `"http://localhost/.well-known/`) {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

// When credentials cannot be checked the answer is 503, not a 401 that
// would send the client looking for another key.
func TestAuthenticationUnavailable(t *testing.T) {
	d := newDoor(t)
	r := d.post(t, "unavailable", ping, nil)
	if r.Code != http.StatusServiceUnavailable || r.Header().Get("Retry-After") != "5" || r.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("%d %v %s", r.Code, r.Header(), r.Body)
	}
	if code, msg := rpcErrorOf(t, r); code != jsonrpc.CodeInternalError || msg != "service unavailable" {
		t.Errorf("answer %v %q", code, msg)
	}
	if recs := d.audit.of(audit.EventAuthnFailure); len(recs) != 1 || recs[0].Outcome != audit.Failed || recs[0].Reason != "unavailable" {
		t.Errorf("recorded %+v", recs)
	}
}

// Browsers: a page may call /mcp only from a loopback or configured
// origin (its preflight answered without credentials); any other origin,
// or a cross-site request that names none, is refused before
// authentication, on record.
func TestOrigins(t *testing.T) {
	d := newDoor(t, func(c *Config) { c.AllowedOrigins = []string{"https://Console.Example.com"} })
	for _, c := range []struct {
		name, origin, fetchSite string
		allowed                 bool
		reason                  string
	}{
		{"no origin", "", "", true, ""},
		{"same-origin without Origin", "", "same-origin", true, ""},
		{"configured", "https://console.example.com", "cross-site", true, ""},
		{"configured, other case", "HTTPS://CONSOLE.EXAMPLE.COM", "cross-site", true, ""},
		{"loopback", "http://127.0.0.1:5173", "cross-site", true, ""},
		{"localhost", "http://localhost:3000", "", true, ""},
		{"IPv6 loopback", "http://[::1]:8080", "", true, ""},
		{"foreign", "https://evil.example", "cross-site", false, "origin-not-allowed"},
		{"configured host, other scheme", "http://console.example.com", "", false, "origin-not-allowed"},
		{"configured host, other port", "https://console.example.com:8443", "", false, "origin-not-allowed"},
		{"loopback-looking name", "http://127.0.0.1.evil.example", "", false, "origin-not-allowed"},
		{"with a path", "http://localhost/x", "", false, "origin-not-allowed"},
		{"opaque", "null", "", false, "origin-not-allowed"},
		{"file", "file://localhost", "", false, "origin-not-allowed"},
		{"cross-site, no Origin", "", "cross-site", false, "cross-site-without-origin"},
	} {
		h := http.Header{"X-Request-Id": {idOf("origin", c.name)}}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			h.Set("Sec-Fetch-Site", c.fetchSite)
		}
		r := d.post(t, aliceKey, ping, h)
		if !c.allowed {
			if r.Code != http.StatusForbidden {
				t.Errorf("%s: %d %s", c.name, r.Code, r.Body)
				continue
			}
			recs := d.audit.request(h.Get("X-Request-Id"))
			if len(recs) != 1 || recs[0].Event != edge.EventRequestRefused || recs[0].Reason != c.reason || recs[0].Actor != "" {
				t.Errorf("%s: recorded %+v", c.name, recs)
			}
			if r.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s: CORS headers on a refusal", c.name)
			}
			continue
		}
		if r.Code != http.StatusOK {
			t.Errorf("%s: %d %s", c.name, r.Code, r.Body)
		}
		if got := r.Header().Get("Access-Control-Allow-Origin"); got != c.origin {
			t.Errorf("%s: Access-Control-Allow-Origin %q", c.name, got)
		}
	}
}

// A preflight from an allowed origin is answered at once, without
// credentials, naming what it allows; a header or method it does not
// allow is refused.
func TestPreflight(t *testing.T) {
	d := newDoor(t)
	for _, c := range []struct {
		name, origin, method, headers string
		status                        int
	}{
		{"allowed", "http://localhost:3000", "POST", "Authorization, Content-Type, Mcp-Param-Region", http.StatusNoContent},
		{"no headers", "http://localhost:3000", "GET", "", http.StatusNoContent},
		{"other header", "http://localhost:3000", "POST", "Authorization, X-Evil", http.StatusForbidden},
		{"other method", "http://localhost:3000", "PUT", "", http.StatusForbidden},
		{"foreign origin", "https://evil.example", "POST", "Authorization", http.StatusForbidden},
	} {
		r := httptest.NewRequest("OPTIONS", "/mcp", nil)
		r.Header.Set("Origin", c.origin)
		r.Header.Set("Access-Control-Request-Method", c.method)
		if c.headers != "" {
			r.Header.Set("Access-Control-Request-Headers", c.headers)
		}
		w := httptest.NewRecorder()
		d.g.ServeHTTP(w, r)
		if w.Code != c.status {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
			continue
		}
		if c.status != http.StatusNoContent {
			continue
		}
		h := w.Header()
		if h.Get("Access-Control-Allow-Methods") != "GET, POST, DELETE" || h.Get("Access-Control-Allow-Origin") != c.origin ||
			h.Get("Access-Control-Allow-Headers") != strings.ToLower(c.headers) || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
			t.Errorf("%s: headers %v", c.name, h)
		}
	}
	if n := len(d.audit.of(audit.EventAuthnFailure)); n != 0 {
		t.Errorf("a preflight was authenticated: %d failures", n)
	}
}

// Ambiguous requests are refused before anything reads them, on record
// with no header's value.
func TestEdgeRefusals(t *testing.T) {
	d := newDoor(t)
	for _, c := range []struct {
		name   string
		h      http.Header
		status int
		reason string
	}{
		{"two Authorization headers", http.Header{"Authorization": {"Bearer " + aliceKey, "Bearer " + bobKey}}, 400, edge.ReasonRepeatedHeader},
		{"two session ids", http.Header{"Mcp-Session-Id": {"a", "b"}}, 400, edge.ReasonRepeatedHeader},
		{"two protocol versions", http.Header{"Mcp-Protocol-Version": {"2025-11-25", "2026-07-28"}}, 400, edge.ReasonRepeatedHeader},
		{"two tool names", http.Header{"Mcp-Name": {"shop.lookup", "shop.route"}}, 400, edge.ReasonRepeatedHeader},
		{"two origins", http.Header{"Origin": {"http://localhost", "https://evil.example"}}, 400, edge.ReasonRepeatedHeader},
		{"latin-1", http.Header{"Content-Type": {"application/json; charset=latin1"}}, 415, edge.ReasonCharset},
	} {
		h := http.Header{"X-Request-Id": {idOf("edge", c.name)}}
		for k, v := range c.h {
			h[k] = v
		}
		r := d.post(t, aliceKey, ping, h)
		if r.Code != c.status {
			t.Errorf("%s: %d %s", c.name, r.Code, r.Body)
			continue
		}
		if code, _ := rpcErrorOf(t, r); code != jsonrpc.CodeInvalidRequest {
			t.Errorf("%s: code %v", c.name, code)
		}
		recs := d.audit.request(h.Get("X-Request-Id"))
		if len(recs) != 1 || recs[0].Event != edge.EventRequestRefused || recs[0].Reason != c.reason || recs[0].Actor != "" {
			t.Errorf("%s: recorded %+v", c.name, recs)
		}
		if b, _ := json.Marshal(recs[0]); strings.Contains(string(b), aliceKey) || strings.Contains(string(b), bobKey) {
			t.Errorf("%s: the record holds a key: %s", c.name, b)
		}
	}
}

// A kill switch on a user refuses every request of theirs at the door,
// on record; others go on.
func TestKilledAtTheDoor(t *testing.T) {
	d := newDoor(t)
	d.kill.user = "alice"
	r := d.post(t, aliceKey, callBody("shop.lookup", `{}`, modernMeta), modern("tools/call", "shop.lookup"))
	if r.Code != http.StatusForbidden {
		t.Fatalf("%d %s", r.Code, r.Body)
	}
	if _, msg := rpcErrorOf(t, r); msg != "access is suspended by kill switch ks-9; ask an operator" {
		t.Errorf("message %q", msg)
	}
	if recs := d.audit.of(EventKillBlocked); len(recs) != 1 || recs[0].Actor != "alice" || recs[0].Reason != govern.ReasonKilled || recs[0].Target != "killswitch:ks-9" {
		t.Errorf("recorded %+v", recs)
	}
	if r := d.post(t, bobKey, callBody("shop.lookup", `{}`, modernMeta), modern("tools/call", "shop.lookup")); r.Code != http.StatusOK {
		t.Errorf("bob: %d %s", r.Code, r.Body)
	}
	if n := d.up.count(); n != 1 {
		t.Errorf("upstream calls %d, want bob's one", n)
	}
}

// Only POST, and GET and DELETE of a session, are served.
func TestMethods(t *testing.T) {
	d := newDoor(t)
	for _, c := range []struct {
		method string
		allow  string
	}{{"PUT", "GET, POST, DELETE"}, {"PATCH", "GET, POST, DELETE"}, {"GET", "POST"}, {"DELETE", "POST"}} {
		r := d.serve(httptest.NewRequest(c.method, "/mcp", nil), aliceKey, nil)
		if r.Code != http.StatusMethodNotAllowed || r.Header().Get("Allow") != c.allow {
			t.Errorf("%s: %d Allow %q", c.method, r.Code, r.Header().Get("Allow"))
		}
	}
}

// The correlation id is the client's X-Request-ID when well-formed, else
// the trace id of a well-formed traceparent, else a fresh one.
func TestCorrelationID(t *testing.T) {
	d := newDoor(t)
	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, c := range []struct {
		h    http.Header
		want string // "" a minted one
	}{
		{http.Header{"X-Request-Id": {"req.1_A-b"}, "Traceparent": {trace}}, "req.1_A-b"},
		{http.Header{"Traceparent": {trace}}, "0af7651916cd43dd8448eb211c80319c"},
		{http.Header{"X-Request-Id": {"bad id"}, "Traceparent": {trace}}, "0af7651916cd43dd8448eb211c80319c"},
		{http.Header{"Traceparent": {"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}, ""},
		{http.Header{"X-Request-Id": {strings.Repeat("a", 129)}}, ""},
	} {
		r := d.post(t, aliceKey, ping, c.h)
		got := r.Header().Get("X-Request-ID")
		if c.want != "" && got != c.want || c.want == "" && (len(got) != 32 || got == c.h.Get("X-Request-Id")) {
			t.Errorf("%v: correlation id %q, want %q", c.h, got, c.want)
		}
	}
}

// A source that spent its budget of failed authentications is answered
// 429 with Retry-After before its credential is looked at, a good one
// included, until the budget refills.
func TestFailedAuthenticationsThrottled(t *testing.T) {
	d := newDoor(t, func(c *Config) {
		g, err := authn.NewFailureGuard(1, 1, time.Minute, c.Auditor, c.Logger, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		c.AuthFailures = g
	})
	if r := d.post(t, "nobody", ping, nil); r.Code != http.StatusUnauthorized {
		t.Fatalf("the first failure: %d %s", r.Code, r.Body)
	}
	for _, key := range []string{"nobody", aliceKey} {
		r := d.post(t, key, ping, nil)
		if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "1" {
			t.Fatalf("%s: %d %v %s", key, r.Code, r.Header(), r.Body)
		}
		if _, msg := rpcErrorOf(t, r); msg != "too many failed authentications; retry in 1 s" {
			t.Errorf("%s: message %q", key, msg)
		}
	}
	d.clock.Advance(time.Second)
	if r := d.post(t, aliceKey, ping, nil); r.Code != http.StatusOK {
		t.Errorf("after the budget refilled: %d %s", r.Code, r.Body)
	}
}
