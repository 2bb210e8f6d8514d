package adminapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// Every route routes.go lists reaches its handler: whatever the handler
// makes of an empty request, it is not the catch-all's "no such endpoint".
func TestEveryRouteIsServed(t *testing.T) {
	f := newFixture(t)
	for i, rt := range []string{
		"GET /api/v1/whoami",
		"GET /api/v1/users", "POST /api/v1/users", "GET /api/v1/users/nobody",
		"POST /api/v1/users/nobody/disable", "POST /api/v1/users/nobody/enable",
		"GET /api/v1/roles", "POST /api/v1/roles",
		"GET /api/v1/keys", "POST /api/v1/keys", "POST /api/v1/keys/nokey/revoke",
		"GET /api/v1/audit", "POST /api/v1/audit/search-token",
		"GET /api/v1/audit/approval_records", "GET /api/v1/audit/exception_records", "GET /api/v1/evidence/bundle",
		"GET /api/v1/upstreams", "POST /api/v1/upstreams", "DELETE /api/v1/upstreams/none", "POST /api/v1/upstreams/none/sync",
		"GET /api/v1/tools", "GET /api/v1/tools/versions", "POST /api/v1/tools/activate", "POST /api/v1/tools/timeout", "POST /api/v1/tools/labels",
		"GET /api/v1/killswitches", "POST /api/v1/killswitches", "POST /api/v1/killswitches/none/release",
		"GET /api/v1/secrets", "PUT /api/v1/secrets/none", "POST /api/v1/vault/rewrap",
		"GET /api/v1/policy", "PUT /api/v1/policy", "GET /api/v1/policy/history", "POST /api/v1/policy/rollback", "POST /api/v1/policy/explain",
		"GET /api/v1/approvals", "GET /api/v1/approvals/none", "POST /api/v1/approvals/none/approve", "POST /api/v1/approvals/none/deny",
		"GET /api/v1/audit/access_reviews", "GET /api/v1/alerts", "POST /api/v1/alerts/none/ack",
		"GET /api/v1/reviews", "POST /api/v1/reviews", "GET /api/v1/reviews/none", "POST /api/v1/reviews/items/none/attest",
	} {
		method, path, _ := strings.Cut(rt, " ")
		body := ""
		if method != "GET" {
			body = "{}"
		}
		id := fmt.Sprintf("route-%d", i)
		r := f.serve(t, request{method: method, path: path, key: f.adminKey, body: body, header: http.Header{"X-Request-Id": {id}}})
		if strings.Contains(r.Body.String(), "no such endpoint") {
			t.Errorf("%s: %d %s", rt, r.Code, r.Body)
		}
		for _, rec := range f.records(t, id) {
			if rec.Event == audit.EventAdminRequest {
				t.Errorf("%s: recorded as an unknown endpoint: %+v", rt, rec)
			}
		}
	}
}

// Any other method or path, authenticated, is answered 404 naming what was
// asked (bounded, valid UTF-8), and the attempt is recorded. Unknown
// methods of known paths are not told apart from unknown paths.
func TestUnknownRoutes(t *testing.T) {
	f := newFixture(t)
	long := "/api/v1/" + strings.Repeat("x", 300)
	for _, c := range []struct{ method, path, shown string }{
		{"GET", "/api/v1/nothing", "/api/v1/nothing"},
		{"GET", "/api/v1/", "/api/v1/"},
		{"GET", "/api/v1/users/", "/api/v1/users/"},
		{"GET", "/api/v1/users/admin/keys", "/api/v1/users/admin/keys"},
		{"DELETE", "/api/v1/users", "/api/v1/users"},
		{"PATCH", "/api/v1/policy", "/api/v1/policy"},
		{"POST", "/api/v1/whoami", "/api/v1/whoami"},
		{"GET", "/api/v1/users/admin/disable", "/api/v1/users/admin/disable"}, // a write route read
		{"BREW", "/api/v1/whoami", "/api/v1/whoami"},
		{"GET", "/api/v2/whoami", "/api/v2/whoami"},
		{"GET", long, long[:200]},
		{"GET", "/api/v1/%ff%fe", "/api/v1/\uFFFD"}, // a run of invalid bytes: one replacement
	} {
		r := f.serve(t, request{method: c.method, path: c.path, key: f.adminKey})
		want := ErrorDetail{Code: string(fault.NotFound), Message: "no such endpoint: " + c.method + " " + c.shown}
		if d := errorOf(t, r, http.StatusNotFound); d != want {
			t.Errorf("%s %.40s: %+v, want %+v", c.method, c.path, d, want)
		}
		rec := f.only(t, r)
		if rec.Event != audit.EventAdminRequest || rec.Outcome != audit.Failed || rec.Reason != string(fault.NotFound) || rec.Actor != "admin" ||
			rec.Detail["method"] != c.method || rec.Detail["path"] != c.shown {
			t.Errorf("%s %.40s: recorded %+v", c.method, c.path, rec)
		}
	}
	// Before authentication nothing tells a route from a non-route.
	known := f.serve(t, request{method: "GET", path: "/api/v1/users"})
	unknown := f.serve(t, request{method: "GET", path: "/api/v1/nothing"})
	if errorOf(t, known, http.StatusUnauthorized) != errorOf(t, unknown, http.StatusUnauthorized) {
		t.Errorf("unauthenticated: %s vs %s", known.Body, unknown.Body)
	}
}
