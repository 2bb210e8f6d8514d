package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/fault"
)

// Every way of not being authenticated gets the same 401 (body, headers)
// whatever the route, known or not, read or write; only the audit record
// tells the reasons apart, and nothing else happens.
func TestUnauthenticatedLooksAlike(t *testing.T) {
	f := newFixture(t)
	_, unknown := authn.NewKey()
	_, other := authn.NewKey()
	mismatch := f.adminKey[:len(f.adminKey)-52] + other[len(other)-52:] // the admin's id, another secret
	disabled, _ := f.keyFor(t, "bob", "auditor")
	revoked, revokedID := f.keyFor(t, "carol", "auditor")
	expired, _ := f.keyFor(t, "dave", "auditor")
	if r := f.do(t, "POST", "/api/v1/keys/"+revokedID+"/revoke", ""); r.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Code, r.Body)
	}
	if r := f.do(t, "POST", "/api/v1/users/bob/disable", ""); r.Code != http.StatusOK {
		t.Fatalf("disable: %d %s", r.Code, r.Body)
	}
	f.clock.Advance(2 * time.Hour) // past every keyFor key's hour; the admin's never expires
	cases := []struct {
		name, authorization string // "" sends no Authorization header
		reason              string
	}{
		{"missing", "", authn.ReasonMissing},
		{"other scheme", "Basic YWRtaW46YWRtaW4=", authn.ReasonMalformed},
		{"not a key", "Bearer hunter2", authn.ReasonMalformed},
		{"key without scheme", f.adminKey, authn.ReasonMalformed},
		{"unknown key", "Bearer " + unknown, authn.ReasonUnknown},
		{"wrong secret", "Bearer " + mismatch, authn.ReasonMismatch},
		{"revoked", "Bearer " + revoked, authn.ReasonRevoked},
		{"user disabled", "Bearer " + disabled, authn.ReasonDisabled},
		{"expired", "Bearer " + expired, authn.ReasonExpired},
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/api/v1/whoami", ""},
		{"POST", "/api/v1/users", `{"name":"eve","roles":["admin"]}`},
		{"GET", "/api/v1/no-such-route", ""},
	}
	var first string
	for i, rt := range routes {
		for _, c := range cases {
			id := fmt.Sprintf("%s-%d", strings.ReplaceAll(c.name, " ", "-"), i)
			rq := request{method: rt.method, path: rt.path, body: rt.body, header: http.Header{"X-Request-Id": {id}}}
			if c.authorization != "" {
				rq.header.Set("Authorization", c.authorization)
			}
			r := f.serve(t, rq)
			if d := errorOf(t, r, http.StatusUnauthorized); d != (ErrorDetail{Code: "unauthenticated", Message: "authentication required"}) {
				t.Errorf("%s %s, %s: %+v", rt.method, rt.path, c.name, d)
			}
			if got := r.Header().Get("WWW-Authenticate"); got != `Bearer realm="ostiary"` {
				t.Errorf("%s: WWW-Authenticate %q", c.name, got)
			}
			body := strings.ReplaceAll(r.Body.String(), id, "ID")
			if first == "" {
				first = body
			} else if body != first {
				t.Errorf("%s %s, %s: body %s differs from %s", rt.method, rt.path, c.name, body, first)
			}
			rec := f.only(t, r)
			if rec.Event != audit.EventAuthnFailure || rec.Outcome != audit.Denied || rec.Reason != c.reason || rec.Actor != "" {
				t.Errorf("%s %s, %s: recorded %s/%s/%s by %q, want authn-failure/denied/%s", rt.method, rt.path, c.name, rec.Event, rec.Outcome, rec.Reason, rec.Actor, c.reason)
			}
		}
	}
	if r := f.do(t, "GET", "/api/v1/users/eve", ""); r.Code != http.StatusNotFound {
		t.Errorf("an unauthenticated POST created a user: %d %s", r.Code, r.Body)
	}
}

// unavailableAuthn stands for a credential store that cannot be read.
type unavailableAuthn struct{}

func (unavailableAuthn) Authenticate(context.Context, string) (*authn.Principal, error) {
	return nil, fault.Wrap(fault.Unavailable, "lookup credential", errors.New("database is locked: /srv/ostiary/ostiary.db"))
}

// When credentials cannot be checked the answer is 503 with Retry-After,
// not a 401 that would send the client looking for another key, and the
// cause stays in the log.
func TestAuthenticationUnavailable(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Authn = unavailableAuthn{} })
	r := f.do(t, "GET", "/api/v1/whoami", "")
	if d := errorOf(t, r, http.StatusServiceUnavailable); d.Code != "unavailable" || d.Message != fault.SafeMessage(fault.Wrap(fault.Unavailable, "", nil)) {
		t.Errorf("answer %+v", d)
	}
	if r.Header().Get("Retry-After") != "5" || r.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("headers %v", r.Header())
	}
	if strings.Contains(r.Body.String(), "ostiary.db") {
		t.Errorf("the cause reached the client: %s", r.Body)
	}
	if rec := f.only(t, r); rec.Event != audit.EventAuthnFailure || rec.Outcome != audit.Failed || rec.Reason != "unavailable" {
		t.Errorf("recorded %+v", rec)
	}
}

// A source that spent its budget of failed authentications is answered
// 429 with Retry-After before its credential is looked at, a good one
// included, until the budget refills.
func TestFailedAuthenticationsThrottled(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		g, err := authn.NewFailureGuard(1, 1, time.Minute, c.Auditor, c.Logger, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		c.Failures = g
	})
	bad := request{method: "GET", path: "/api/v1/whoami", key: "nonsense"}
	if r := f.serve(t, bad); r.Code != http.StatusUnauthorized {
		t.Fatalf("first failure: %d %s", r.Code, r.Body)
	}
	for _, rq := range []request{bad, {method: "GET", path: "/api/v1/whoami", key: f.adminKey}} {
		r := f.serve(t, rq)
		if d := errorOf(t, r, http.StatusTooManyRequests); d.Code != "rate-limited" || d.Message != "too many failed authentications; retry in 1 s" {
			t.Errorf("answer %+v", d)
		}
		if r.Header().Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q", r.Header().Get("Retry-After"))
		}
	}
	f.clock.Advance(time.Second)
	if r := f.do(t, "GET", "/api/v1/whoami", ""); r.Code != http.StatusOK {
		t.Errorf("after the budget refilled: %d %s", r.Code, r.Body)
	}
}

// Ambiguous requests are refused before authentication, on record without
// any header value: two Authorization headers hold two credentials.
func TestEdgeRefusals(t *testing.T) {
	f := newFixture(t)
	two := http.Header{"Authorization": {"Bearer " + f.adminKey, "Bearer " + f.adminKey}}
	for _, c := range []struct {
		name   string
		header http.Header
		chunk  bool
		status int
		reason string
		hdr    string
		says   string // in the answer's message
	}{
		{"two Authorization headers", two, false, http.StatusBadRequest, edge.ReasonRepeatedHeader, "Authorization", "Authorization header appears more than once"},
		{"two Content-Type headers", http.Header{"Content-Type": {"application/json", "text/plain"}}, false, http.StatusBadRequest, edge.ReasonRepeatedHeader, "Content-Type", "Content-Type header appears more than once"},
		{"two Mcp-Param headers", http.Header{"Mcp-Param-Region": {"eu", "us"}}, false, http.StatusBadRequest, edge.ReasonRepeatedHeader, "Mcp-Param-Region", "Mcp-Param-Region header appears more than once"},
		{"chunked body", nil, true, http.StatusBadRequest, edge.ReasonFraming, "Transfer-Encoding", "Transfer-Encoding is refused"},
		{"latin-1 body", http.Header{"Content-Type": {"application/json; charset=iso-8859-1"}}, false, http.StatusUnsupportedMediaType, edge.ReasonCharset, "Content-Type", "charset iso-8859-1 is not supported"},
		{"malformed Content-Type", http.Header{"Content-Type": {"application/json; ;"}}, false, http.StatusUnsupportedMediaType, edge.ReasonCharset, "Content-Type", "Content-Type header is malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/v1/users", strings.NewReader(`{"name":"eve","roles":[]}`))
			for k, vs := range c.header {
				r.Header[k] = vs
			}
			if r.Header.Get("Authorization") == "" {
				r.Header.Set("Authorization", "Bearer "+f.adminKey)
			}
			if c.chunk {
				r.TransferEncoding = []string{"chunked"}
			}
			w := httptest.NewRecorder()
			f.api.ServeHTTP(w, r)
			if d := errorOf(t, w, c.status); d.Code != "invalid-request" || !strings.Contains(d.Message, c.says) {
				t.Errorf("answer %+v", d)
			}
			rec := f.only(t, w)
			if rec.Event != edge.EventRequestRefused || rec.Outcome != audit.Denied || rec.Reason != c.reason || rec.Detail["header"] != c.hdr || rec.Actor != "" {
				t.Errorf("recorded %+v", rec)
			}
			if b, _ := json.Marshal(rec); strings.Contains(string(b), f.adminKey[4:20]) {
				t.Errorf("the record holds the key: %s", b)
			}
		})
	}
	if r := f.do(t, "GET", "/api/v1/users/eve", ""); r.Code != http.StatusNotFound {
		t.Errorf("a refused request created a user: %d", r.Code)
	}
}

// The client's X-Request-ID is kept when it is a short token, replaced
// when it could forge a log line or flood one; every answer carries it and
// is marked not to be cached or sniffed.
func TestRequestIDAndHeaders(t *testing.T) {
	f := newFixture(t)
	minted := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, c := range []struct {
		sent string
		kept bool
	}{
		{"req-1.A_b", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"two words", false},
		{"line\r\nforged: yes", false},
		{"", false},
	} {
		var ids []string
		for _, key := range []string{f.adminKey, ""} { // a success and a 401
			rq := request{method: "GET", path: "/api/v1/whoami", key: key, header: http.Header{}}
			if c.sent != "" {
				rq.header.Set("X-Request-Id", c.sent)
			}
			r := f.serve(t, rq)
			got := r.Header().Get("X-Request-ID")
			if c.kept && got != c.sent || !c.kept && !minted.MatchString(got) {
				t.Errorf("sent %q: request id %q", c.sent, got)
			}
			if r.Header().Get("Cache-Control") != "no-store" || r.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", r.Header())
			}
			ids = append(ids, got)
		}
		if c.kept {
			if rs := f.records(t, c.sent); len(rs) != 2 || rs[0].Event != audit.EventWhoami || rs[1].Event != audit.EventAuthnFailure {
				t.Errorf("sent %q: records %+v", c.sent, rs)
			}
		} else if ids[0] == ids[1] {
			t.Errorf("sent %q: two requests minted one id %s", c.sent, ids[0])
		} else {
			for _, id := range ids {
				if rs := f.records(t, id); len(rs) != 1 {
					t.Errorf("sent %q: records under %s: %+v", c.sent, id, rs)
				}
			}
		}
	}
}

// --rate-admin-write bounds each key's writes: past the burst a write is
// answered 429 with Retry-After and recorded, reads and other keys go on,
// and the key writes again once the bucket refills.
func TestAdminWriteRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WriteRate = config.Rate{Per: 1, Burst: 3} })
	auditorKey, _ := f.keyFor(t, "bob", "auditor") // spends two of the admin's writes
	if r := f.do(t, "POST", "/api/v1/keys", `{"user":"admin"}`); r.Code != http.StatusCreated {
		t.Fatalf("the third write: %d %s", r.Code, r.Body)
	}
	r := f.do(t, "POST", "/api/v1/keys", `{"user":"admin"}`)
	if d := errorOf(t, r, http.StatusTooManyRequests); d.Code != "rate-limited" || d.Message != "too many admin writes with this key; retry in 1 s" {
		t.Errorf("answer %+v", d)
	}
	if r.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", r.Header().Get("Retry-After"))
	}
	rec := f.only(t, r) // the refusal, and no key-create
	if rec.Event != edge.EventRateLimited || rec.Outcome != audit.Denied || rec.Reason != "rate-limit-admin-writes" || rec.Actor != "admin" ||
		rec.Detail["method"] != "POST" || rec.Detail["path"] != "/api/v1/keys" || rec.Detail["retry_after_s"] != json.Number("1") && rec.Detail["retry_after_s"] != float64(1) {
		t.Errorf("recorded %+v", rec)
	}
	var keys KeyList
	decodeBody(t, f.do(t, "GET", "/api/v1/keys?user=admin", ""), http.StatusOK, &keys)
	if len(keys.Keys) != 2 {
		t.Errorf("the admin has %d keys, want 2 (the refused write made one?)", len(keys.Keys))
	}
	for _, p := range []string{"/api/v1/users/admin/disable", "/api/v1/no-such-route"} { // every method but GET and HEAD is a write
		if r := f.do(t, "POST", p, ""); r.Code != http.StatusTooManyRequests {
			t.Errorf("POST %s: %d", p, r.Code)
		}
	}
	if r := f.serve(t, request{method: "POST", path: "/api/v1/audit/search-token", key: auditorKey, body: `{"value":"x"}`}); r.Code == http.StatusTooManyRequests {
		t.Errorf("another key's write was limited: %s", r.Body)
	}
	f.clock.Advance(time.Second)
	if r := f.do(t, "POST", "/api/v1/keys", `{"user":"admin"}`); r.Code != http.StatusCreated {
		t.Errorf("after the bucket refilled: %d %s", r.Code, r.Body)
	}
}
