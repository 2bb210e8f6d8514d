package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/killswitch"
)

// A body is read strictly: at most 1 MiB, JSON only, one value, every
// member a field's exact name, no name twice in any spelling. A refused
// body is refused on record under the action it asked for, and does
// nothing.
func TestStrictBodies(t *testing.T) {
	f := newFixture(t)
	big := `{"name":"eve","roles":[],"owner":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	atCap := `{"name":"` + strings.Repeat("a", MaxBodyBytes-len(`{"name":"","roles":[]}`)) + `","roles":[]}`
	for _, c := range []struct {
		name, body, contentType string
		status                  int
		code                    fault.Kind
		message                 string // contained in the answer's message
	}{
		{"over 1 MiB", big, "application/json", http.StatusRequestEntityTooLarge, fault.TooLarge, "exceeds 1048576 bytes"},
		{"unknown member", `{"name":"eve","roles":[],"admin":true}`, "application/json", 400, fault.Invalid, "unknown field"},
		{"case variant of a member", `{"Name":"eve","roles":[]}`, "application/json", 400, fault.Invalid, "unknown field"},
		{"duplicate member", `{"name":"eve","name":"root","roles":[]}`, "application/json", 400, fault.Invalid, "malformed request body"},
		{"case-colliding members", `{"name":"eve","roles":[],"ROLES":["admin"]}`, "application/json", 400, fault.Invalid, "malformed request body"},
		{"two values", `{"name":"eve","roles":[]} {"name":"mallory","roles":[]}`, "application/json", 400, fault.Invalid, "malformed request body"},
		{"not JSON", `name=eve`, "application/json", 400, fault.Invalid, "malformed request body"},
		{"invalid UTF-8", "{\"name\":\"ev\xffe\",\"roles\":[]}", "application/json", 400, fault.Invalid, "malformed request body"},
		{"empty", ``, "application/json", 400, fault.Invalid, "malformed request body"},
		{"not JSON by type", `{"name":"eve","roles":[]}`, "text/plain", 400, fault.Invalid, "Content-Type must be application/json"},
		{"form", `{"name":"eve","roles":[]}`, "application/x-www-form-urlencoded", 400, fault.Invalid, "Content-Type must be application/json"},
		// The cap is exactly 1 MiB: a body of that size is read, and it is
		// the name's length the service refuses.
		{"at the cap", atCap, "application/json", 400, fault.Invalid, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.serve(t, request{method: "POST", path: "/api/v1/users", key: f.adminKey, body: c.body, header: http.Header{"Content-Type": {c.contentType}}})
			d := errorOf(t, r, c.status)
			if d.Code != string(c.code) || !strings.Contains(d.Message, c.message) {
				t.Errorf("answer %+v, want %s with %q", d, c.code, c.message)
			}
			if len(d.Message) > 300 {
				t.Errorf("the answer echoes the body: %d bytes of message", len(d.Message))
			}
			rec := f.only(t, r)
			if rec.Event != audit.EventUserCreate || rec.Outcome != audit.Failed || rec.Reason != string(c.code) || rec.Actor != "admin" {
				t.Errorf("recorded %s/%s/%s by %s, want user-create/error/%s", rec.Event, rec.Outcome, rec.Reason, rec.Actor, c.code)
			}
		})
	}
	var users UserList
	decodeBody(t, f.do(t, "GET", "/api/v1/users", ""), http.StatusOK, &users)
	if len(users.Users) != 1 {
		t.Errorf("users after refused bodies: %+v", users.Users)
	}
	// The same body, well formed, with or without a Content-Type.
	r := f.serve(t, request{method: "POST", path: "/api/v1/users", key: f.adminKey, body: `{"name":"eve","roles":[]}`, header: http.Header{"Content-Type": nil}})
	if r.Code != http.StatusCreated {
		t.Errorf("a plain body: %d %s", r.Code, r.Body)
	}
}

// Refused bodies are recorded under the action each route performs, with
// the target it names when the path names one.
func TestStrictBodiesRecordTheirAction(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ method, path, event, target string }{
		{"POST", "/api/v1/killswitches", killswitch.EventEngage, ""},
		{"POST", "/api/v1/killswitches/ks_1/release", killswitch.EventRelease, "killswitch:ks_1"},
		{"PUT", "/api/v1/secrets/db-password", "secret-set", "secret:db-password"},
		{"POST", "/api/v1/keys", audit.EventKeyCreate, ""},
		{"PUT", "/api/v1/policy", "policy-set", "policy"},
	} {
		r := f.do(t, c.method, c.path, `{"reason":"x","reason":"y"}`)
		if d := errorOf(t, r, http.StatusBadRequest); d.Code != string(fault.Invalid) {
			t.Errorf("%s %s: %+v", c.method, c.path, d)
		}
		if rec := f.only(t, r); rec.Event != c.event || rec.Target != c.target || rec.Outcome != audit.Failed {
			t.Errorf("%s %s: recorded %s %q %s, want %s %q", c.method, c.path, rec.Event, rec.Target, rec.Outcome, c.event, c.target)
		}
	}
}

// One renderer maps each fault kind to its status, its code and a safe
// message: the fault's own message if it has one, else the kind's generic
// text; never the cause. Errors of no kind are internal errors.
func TestFaultRendering(t *testing.T) {
	f := newFixture(t)
	const cause = "open /srv/ostiary/master.key: permission denied"
	for k, status := range map[fault.Kind]int{
		fault.Invalid: 400, fault.Unauthenticated: 401, fault.Forbidden: 403, fault.NotFound: 404,
		fault.Conflict: 409, fault.TooLarge: 413, fault.Unavailable: 503, fault.Internal: 500,
	} {
		for _, c := range []struct {
			err     error
			message string
		}{
			{fault.Wrap(k, "op", errors.New(cause)), fault.SafeMessage(fault.Wrap(k, "", nil))},
			{fmt.Errorf("outer: %w", &fault.Error{Kind: k, Message: "a safe " + string(k), Err: errors.New(cause)}), "a safe " + string(k)},
		} {
			w := httptest.NewRecorder()
			w.Header().Set("X-Request-ID", "req-1") // as ServeHTTP does
			f.api.writeError(w, "req-1", c.err)
			if d := errorOf(t, w, status); d.Code != string(k) || d.Message != c.message || d.Message == "" {
				t.Errorf("%v: %+v, want %s %q", c.err, d, k, c.message)
			}
			if strings.Contains(w.Body.String(), "master.key") || strings.Contains(w.Body.String(), "outer") {
				t.Errorf("%s: the cause reached the client: %s", k, w.Body)
			}
			if got := w.Header().Get("Retry-After"); (status == 503) != (got == "5") {
				t.Errorf("%s: Retry-After %q", k, got)
			}
		}
	}
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-ID", "req-1")
	f.api.writeError(w, "req-1", errors.New(cause))
	if d := errorOf(t, w, 500); d != (ErrorDetail{Code: "internal", Message: "internal error"}) {
		t.Errorf("an error of no kind: %+v", d)
	}
}

// The services' faults reach the client through that renderer, each with
// its status.
func TestServiceFaults(t *testing.T) {
	f := newFixture(t)
	auditorKey, _ := f.keyFor(t, "bob", "auditor")
	for _, c := range []struct {
		name, method, path, key, body string
		status                        int
		code                          fault.Kind
	}{
		{"not found", "GET", "/api/v1/users/nobody", f.adminKey, "", 404, fault.NotFound},
		{"conflict", "POST", "/api/v1/users", f.adminKey, `{"name":"admin","roles":[]}`, 409, fault.Conflict},
		{"forbidden", "POST", "/api/v1/users", auditorKey, `{"name":"eve","roles":[]}`, 403, fault.Forbidden},
		{"invalid query", "GET", "/api/v1/audit?bogus=1", f.adminKey, "", 400, fault.Invalid},
		{"invalid value", "GET", "/api/v1/approvals?limit=9999", f.adminKey, "", 400, fault.Invalid},
		{"unavailable", "POST", "/api/v1/policy/explain", f.adminKey, `{"user":"bob","tool":"a.b","args":{}}`, 503, fault.Unavailable},
	} {
		r := f.serve(t, request{method: c.method, path: c.path, key: c.key, body: c.body})
		if d := errorOf(t, r, c.status); d.Code != string(c.code) || d.Message == "" {
			t.Errorf("%s: %+v", c.name, d)
		}
		if rec := f.only(t, r); rec.Outcome == audit.Success || rec.Reason != string(c.code) {
			t.Errorf("%s: recorded %+v", c.name, rec)
		}
	}
}
