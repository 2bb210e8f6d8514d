package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/store/sqlite"
)

// records reads audit records straight from the store (newest first),
// without adding records of its own.
func records(t *testing.T, s *apptest.Server, q audit.Query) []audit.Record {
	t.Helper()
	if lag := s.App.SettleAudit(10 * time.Second); lag > 0 {
		t.Fatalf("the audit index is %d records behind the log", lag)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(s.Dir, "ostiary.db"), sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if q.Limit == 0 {
		q.Limit = audit.MaxLimit
	}
	recs, err := st.QueryAudit(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func lastRecord(t *testing.T, s *apptest.Server) audit.Record {
	t.Helper()
	recs := records(t, s, audit.Query{Limit: 1})
	if len(recs) == 0 {
		t.Fatal("no audit records")
	}
	return recs[0]
}

func mustStatus(t *testing.T, r apptest.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body %s", r.Status, want, r.Body)
	}
}

func errorCode(t *testing.T, r apptest.Response) string {
	t.Helper()
	var e adminapi.ErrorBody
	r.JSON(t, &e)
	return e.Error.Code
}

// newKey creates a key as admin and returns its text and id.
func newKey(t *testing.T, s *apptest.Server, body map[string]any) (string, string) {
	t.Helper()
	r := s.Do("POST", "/api/v1/keys", s.AdminKey, body)
	mustStatus(t, r, http.StatusCreated)
	var k adminapi.CreatedKey
	r.JSON(t, &k)
	if !strings.HasPrefix(k.APIKey, "ost_"+k.Key.ID+"_") {
		t.Fatalf("key text %q does not carry id %s", k.APIKey, k.Key.ID)
	}
	return k.APIKey, k.Key.ID
}

func setup(t *testing.T, s *apptest.Server, role string, grants []string, user string, service bool) {
	t.Helper()
	if role != "" {
		mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": role, "grants": grants}), http.StatusCreated)
	}
	roles := []string{}
	if role != "" {
		roles = append(roles, role)
	}
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": user, "service": service, "roles": roles}), http.StatusCreated)
}

func TestIdentityLifecycle(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "clerk", []string{"invoke:finance.*", "discover:*"}, "alice", false)
	setup(t, s, "", nil, "ci-bot", true)

	var users adminapi.UserList
	s.Do("GET", "/api/v1/users", s.AdminKey, nil).JSON(t, &users)
	if len(users.Users) != 3 || users.Users[1].Name != "alice" || users.Users[1].Roles[0] != "clerk" || !users.Users[2].Service {
		t.Fatalf("users: %+v", users.Users)
	}
	var roles adminapi.RoleList
	s.Do("GET", "/api/v1/roles", s.AdminKey, nil).JSON(t, &roles)
	if len(roles.Roles) != 3 || !roles.Roles[0].Builtin || roles.Roles[2].Name != "clerk" {
		t.Fatalf("roles: %+v", roles.Roles)
	}
	key, id := newKey(t, s, map[string]any{"user": "alice", "expires_in": "8h"})
	var who adminapi.Whoami
	r := s.Do("GET", "/api/v1/whoami", key, nil)
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &who)
	if who.User != "alice" || who.KeyID != id || len(who.Grants) != 2 {
		t.Errorf("whoami: %+v", who)
	}
	// alice may not manage identities.
	r = s.Do("GET", "/api/v1/users", key, nil)
	mustStatus(t, r, http.StatusForbidden)
	if rec := lastRecord(t, s); rec.Event != audit.EventUserList || rec.Outcome != audit.Denied || rec.Actor != "alice" {
		t.Errorf("denial recorded as %+v", rec)
	}
	// Duplicates are conflicts and leave the store unchanged.
	r = s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "alice"})
	mustStatus(t, r, http.StatusConflict)
	r = s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "clerk", "grants": []string{"discover:*"}})
	mustStatus(t, r, http.StatusConflict)
	s.Do("GET", "/api/v1/roles", s.AdminKey, nil).JSON(t, &roles)
	if len(roles.Roles[2].Grants) != 2 {
		t.Errorf("duplicate role changed the original: %+v", roles.Roles[2])
	}
	// last_used is recorded (flushed at the latest on stop).
	s.Stop()
	st, _ := sqlite.Open(context.Background(), filepath.Join(s.Dir, "ostiary.db"), sqlite.Options{ReadOnly: true})
	defer st.Close()
	k, err := st.KeyByID(context.Background(), id)
	if err != nil || k.LastUsedAt.IsZero() {
		t.Errorf("last used not recorded: %+v %v", k, err)
	}
}

// Revoking a key or disabling a user takes effect on the very next request,
// despite the credential cache.
func TestRevocationIsImmediate(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "reader", []string{"read-audit:*"}, "alice", false)
	key, id := newKey(t, s, map[string]any{"user": "alice"})
	key2, _ := newKey(t, s, map[string]any{"user": "alice"})
	for range 3 { // warm the cache
		mustStatus(t, s.Do("GET", "/api/v1/whoami", key, nil), http.StatusOK)
	}
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+id+"/revoke", s.AdminKey, nil), http.StatusOK)
	r := s.Do("GET", "/api/v1/whoami", key, nil)
	mustStatus(t, r, http.StatusUnauthorized)
	if rec := lastRecord(t, s); rec.Event != audit.EventAuthnFailure || rec.Reason != "key-revoked" || rec.KeyID != id {
		t.Errorf("revoked use recorded as %+v", rec)
	}
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+id+"/revoke", s.AdminKey, nil), http.StatusConflict)

	mustStatus(t, s.Do("GET", "/api/v1/whoami", key2, nil), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/users/alice/disable", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", key2, nil), http.StatusUnauthorized)
	if rec := lastRecord(t, s); rec.Reason != "user-disabled" {
		t.Errorf("disabled use recorded as %+v", rec)
	}
	mustStatus(t, s.Do("POST", "/api/v1/users/alice/enable", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", key2, nil), http.StatusOK)
}

func TestKeyExpiry(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "reader", []string{"read-audit:*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice", "expires_in": "1h"})
	mustStatus(t, s.Do("GET", "/api/v1/whoami", key, nil), http.StatusOK)
	s.Clock.Advance(time.Hour)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", key, nil), http.StatusUnauthorized)
	if rec := lastRecord(t, s); rec.Reason != "key-expired" {
		t.Errorf("expired use recorded as %+v", rec)
	}
	var keys adminapi.KeyList
	s.Do("GET", "/api/v1/keys?user=alice", s.AdminKey, nil).JSON(t, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].Status != "expired" {
		t.Errorf("keys: %+v", keys.Keys)
	}
	for _, bad := range []string{"0s", "-1h", "soon", "4000d"} {
		r := s.Do("POST", "/api/v1/keys", s.AdminKey, map[string]any{"user": "alice", "expires_in": bad})
		mustStatus(t, r, http.StatusBadRequest)
	}
}

// A key's permission is its user's roles intersected with its scope.
func TestScopeIntersectsRoles(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "ops", []string{"read-audit:*", "manage-identities:*"}, "olga", false)
	scoped, _ := newKey(t, s, map[string]any{"user": "olga", "scope": []string{"read-audit:*"}})
	full, _ := newKey(t, s, map[string]any{"user": "olga"})
	mustStatus(t, s.Do("GET", "/api/v1/audit?limit=1", scoped, nil), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/users", scoped, nil), http.StatusForbidden)
	mustStatus(t, s.Do("GET", "/api/v1/users", full, nil), http.StatusOK)
	// A scope beyond the user's grants is refused.
	r := s.Do("POST", "/api/v1/keys", s.AdminKey, map[string]any{"user": "olga", "scope": []string{"manage-secrets:*"}})
	mustStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(string(r.Body), "not within the grants") {
		t.Errorf("body %s", r.Body)
	}
}

// Nobody can hand out more than they hold.
func TestNoPrivilegeEscalation(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "idm", []string{"manage-identities:*", "invoke:hr.*"}, "ivan", false)
	key, _ := newKey(t, s, map[string]any{"user": "ivan"})
	cases := []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/roles", map[string]any{"name": "root", "grants": []string{"admin:*"}}},
		{"/api/v1/roles", map[string]any{"name": "fin", "grants": []string{"invoke:finance.*"}}},
		{"/api/v1/users", map[string]any{"name": "mallory", "roles": []string{"admin"}}},
		{"/api/v1/keys", map[string]any{"user": "admin"}},
		{"/api/v1/keys", map[string]any{"user": "admin", "scope": []string{"read-audit:*"}}},
	}
	for _, c := range cases {
		r := s.Do("POST", c.path, key, c.body)
		if r.Status != http.StatusForbidden {
			t.Errorf("POST %s %v: status %d, body %s", c.path, c.body, r.Status, r.Body)
		}
	}
	mustStatus(t, s.Do("POST", "/api/v1/users/admin/disable", key, nil), http.StatusForbidden)
	// Within its own grants it may act.
	mustStatus(t, s.Do("POST", "/api/v1/roles", key, map[string]any{"name": "hr", "grants": []string{"invoke:hr.payroll"}}), http.StatusCreated)
	// Nothing of the refused requests was stored.
	var users adminapi.UserList
	s.Do("GET", "/api/v1/users", s.AdminKey, nil).JSON(t, &users)
	if len(users.Users) != 2 {
		t.Errorf("users: %+v", users.Users)
	}
}

// The last usable admin key cannot be lost.
func TestKeepsAnAdmin(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	var who adminapi.Whoami
	s.Do("GET", "/api/v1/whoami", s.AdminKey, nil).JSON(t, &who)
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+who.KeyID+"/revoke", s.AdminKey, nil), http.StatusConflict)
	mustStatus(t, s.Do("POST", "/api/v1/users/admin/disable", s.AdminKey, nil), http.StatusConflict)
	newKey(t, s, map[string]any{"user": "admin"})
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+who.KeyID+"/revoke", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusUnauthorized)
}

// Every authentication failure looks the same to the client, whatever the
// reason, and is recorded with its reason.
func TestAuthenticationFailuresLookAlike(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "", nil, "alice", false)
	revoked, rid := newKey(t, s, map[string]any{"user": "alice"})
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+rid+"/revoke", s.AdminKey, nil), http.StatusOK)
	id := strings.Split(s.AdminKey, "_")[1]
	wrongSecret := "ost_" + id + "_" + strings.Repeat("a", 52)
	unknown := "ost_" + strings.Repeat("b", 16) + "_" + strings.Repeat("a", 52)
	cases := map[string]struct{ header, reason string }{
		"missing":      {"", "credential-missing"},
		"not bearer":   {"Basic " + s.AdminKey, "credential-malformed"},
		"malformed":    {"Bearer ost_short", "credential-malformed"},
		"upper case":   {"Bearer " + strings.ToUpper(s.AdminKey), "credential-malformed"},
		"unknown":      {"Bearer " + unknown, "key-unknown"},
		"wrong secret": {"Bearer " + wrongSecret, "key-secret-mismatch"},
		"revoked":      {"Bearer " + revoked, "key-revoked"},
	}
	for name, c := range cases {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/users", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="ostiary"` {
			t.Errorf("%s: status %d, WWW-Authenticate %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		rec := lastRecord(t, s)
		if rec.Event != audit.EventAuthnFailure || rec.Outcome != audit.Denied || rec.Reason != c.reason {
			t.Errorf("%s: recorded %s/%s/%s, want reason %s", name, rec.Event, rec.Outcome, rec.Reason, c.reason)
		}
	}
	// The bodies differ only in the request id.
	a := s.Do("GET", "/api/v1/users", "", nil)
	b := s.Do("GET", "/api/v1/users", wrongSecret, nil)
	var ea, eb adminapi.ErrorBody
	a.JSON(t, &ea)
	b.JSON(t, &eb)
	if ea.Error != eb.Error || ea.Error.Code != "unauthenticated" {
		t.Errorf("bodies differ: %+v vs %+v", ea, eb)
	}
}

// Bad input gets a clear error, is recorded, and changes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	cases := []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"malformed JSON", "POST", "/api/v1/users", `{"name":`, 400, "invalid-request", "malformed"},
		{"unknown field", "POST", "/api/v1/users", `{"name":"x","admin":true}`, 400, "invalid-request", "unknown field"},
		{"case-variant field", "POST", "/api/v1/users", `{"Name":"x"}`, 400, "invalid-request", "unknown field"},
		{"duplicate key", "POST", "/api/v1/users", `{"name":"x","name":"admin"}`, 400, "invalid-request", "duplicate"},
		{"trailing data", "POST", "/api/v1/users", `{"name":"x"}{"name":"y"}`, 400, "invalid-request", "after"},
		{"wrong type", "POST", "/api/v1/users", `{"name":7}`, 400, "invalid-request", "name"},
		{"bad name", "POST", "/api/v1/users", `{"name":"Robert'); DROP"}`, 400, "invalid-request", "invalid user name"},
		{"unknown role", "POST", "/api/v1/users", `{"name":"x","roles":["ghost"]}`, 404, "not-found", "ghost"},
		{"bad grant", "POST", "/api/v1/roles", `{"name":"r","grants":["fly:*"]}`, 400, "invalid-request", "unknown action"},
		{"no grants", "POST", "/api/v1/roles", `{"name":"r","grants":[]}`, 400, "invalid-request", "at least one grant"},
		{"unknown user key", "POST", "/api/v1/keys", `{"user":"ghost"}`, 404, "not-found", "ghost"},
		{"bad key id", "POST", "/api/v1/keys/XYZ/revoke", ``, 400, "invalid-request", "not a key id"},
		{"unknown key", "POST", "/api/v1/keys/" + strings.Repeat("a", 16) + "/revoke", ``, 404, "not-found", "does not exist"},
		{"unknown user", "POST", "/api/v1/users/ghost/disable", ``, 404, "not-found", "ghost"},
		{"oversized", "POST", "/api/v1/users", `{"name":"` + strings.Repeat("a", adminapi.MaxBodyBytes) + `"}`, 413, "payload-too-large", "exceeds"},
		{"unknown route", "GET", "/api/v1/nothing-here", ``, 404, "not-found", "no such endpoint"},
		{"bad query param", "GET", "/api/v1/audit?usr=x", ``, 400, "invalid-request", "unknown query parameter"},
		{"bad limit", "GET", "/api/v1/audit?limit=0", ``, 400, "invalid-request", "limit"},
		{"bad since", "GET", "/api/v1/audit?since=yesterday", ``, 400, "invalid-request", "RFC 3339"},
	}
	for _, c := range cases {
		before := lastRecord(t, s).Seq
		var body any
		if c.body != "" {
			body = c.body
		}
		r := s.Do(c.method, c.path, s.AdminKey, body)
		var e adminapi.ErrorBody
		r.JSON(t, &e)
		if r.Status != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.message) {
			t.Errorf("%s: %d %+v, want %d %s %q", c.name, r.Status, e.Error, c.status, c.code, c.message)
		}
		if e.RequestID == "" || r.Header.Get("X-Request-ID") != e.RequestID {
			t.Errorf("%s: request id %q / %q", c.name, e.RequestID, r.Header.Get("X-Request-ID"))
		}
		rec := lastRecord(t, s)
		if rec.Seq != before+1 || rec.Outcome != audit.Failed || rec.Reason != c.code || rec.RequestID != e.RequestID {
			t.Errorf("%s: recorded %+v", c.name, rec)
		}
	}
	var users adminapi.UserList
	s.Do("GET", "/api/v1/users", s.AdminKey, nil).JSON(t, &users)
	if len(users.Users) != 1 {
		t.Errorf("bad input left users behind: %+v", users.Users)
	}
	var roles adminapi.RoleList
	s.Do("GET", "/api/v1/roles", s.AdminKey, nil).JSON(t, &roles)
	if len(roles.Roles) != 2 {
		t.Errorf("bad input left roles behind: %+v", roles.Roles)
	}
}

// Every admin request, allowed or not, leaves exactly one record naming
// its actor, event and outcome.
func TestEveryAdminActionAudited(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "", nil, "nobody", false)
	nobody, _ := newKey(t, s, map[string]any{"user": "nobody"})
	_, kid := newKey(t, s, map[string]any{"user": "nobody"})
	actions := []struct {
		method, path string
		body         any
		event        string
		status       int // as admin
	}{
		{"GET", "/api/v1/whoami", nil, audit.EventWhoami, 200},
		{"GET", "/api/v1/users", nil, audit.EventUserList, 200},
		{"GET", "/api/v1/users/nobody", nil, audit.EventUserShow, 200},
		{"POST", "/api/v1/users", map[string]any{"name": "u1"}, audit.EventUserCreate, 201},
		{"POST", "/api/v1/users/u1/disable", nil, audit.EventUserDisable, 200},
		{"POST", "/api/v1/users/u1/enable", nil, audit.EventUserEnable, 200},
		{"GET", "/api/v1/roles", nil, audit.EventRoleList, 200},
		{"POST", "/api/v1/roles", map[string]any{"name": "r1", "grants": []string{"discover:*"}}, audit.EventRoleCreate, 201},
		{"GET", "/api/v1/keys", nil, audit.EventKeyList, 200},
		{"POST", "/api/v1/keys", map[string]any{"user": "u1"}, audit.EventKeyCreate, 201},
		{"POST", "/api/v1/keys/" + kid + "/revoke", nil, audit.EventKeyRevoke, 200},
		{"GET", "/api/v1/audit?limit=5", nil, audit.EventAuditQuery, 200},
	}
	for _, a := range actions {
		for _, who := range []struct {
			name, key string
		}{{"nobody", nobody}, {"admin", s.AdminKey}} {
			before := lastRecord(t, s).Seq
			r := s.Do(a.method, a.path, who.key, a.body)
			wantStatus, wantOutcome := a.status, audit.Success
			if who.name == "nobody" && a.event != audit.EventWhoami {
				wantStatus, wantOutcome = 403, audit.Denied
			}
			if r.Status != wantStatus {
				t.Errorf("%s %s as %s: status %d, want %d (%s)", a.method, a.path, who.name, r.Status, wantStatus, r.Body)
			}
			recs := records(t, s, audit.Query{Limit: 10})
			if recs[0].Seq != before+1 {
				t.Errorf("%s %s as %s: %d records, want exactly 1", a.method, a.path, who.name, recs[0].Seq-before)
			}
			if rec := recs[0]; rec.Event != a.event || rec.Outcome != wantOutcome || rec.Actor != who.name || rec.RequestID != r.Header.Get("X-Request-ID") {
				t.Errorf("%s %s as %s: recorded %s/%s/%s", a.method, a.path, who.name, rec.Event, rec.Outcome, rec.Actor)
			}
		}
	}
}

// If the audit log cannot be written, actions fail with 503 and nothing
// happens. A read-only database is a storage failure: the server stays
// closed when the disk would take writes again (no retry on the same
// files), and recovers at a restart.
func TestFailsClosedWhenStoreReadOnly(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	before := lastRecord(t, s).Seq
	if err := s.App.SetStoreReadOnlyForTest(true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, key string
		body              any
	}{
		{"POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "ghost"}},
		{"GET", "/api/v1/users", s.AdminKey, nil},
		{"GET", "/api/v1/whoami", s.AdminKey, nil},
		{"GET", "/api/v1/audit", s.AdminKey, nil},
		{"GET", "/api/v1/users", "", nil}, // an authentication failure that cannot be recorded
	} {
		r := s.Do(c.method, c.path, c.key, c.body)
		if r.Status != http.StatusServiceUnavailable || errorCode(t, r) != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
	if err := s.App.SetStoreReadOnlyForTest(false); err != nil {
		t.Fatal(err)
	}
	if r := s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "ghost"}); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("a change once the disk takes writes again: %d %s", r.Status, r.Body)
	}
	if r := s.Do("GET", "/readyz", "", nil); r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), `"cause":"database read-only"`) {
		t.Errorf("readyz: %d %s", r.Status, r.Body)
	}
	s.App.Close(context.Background()) // the stop itself cannot be recorded
	s.Restart(nil)
	if rec := lastRecord(t, s); rec.Event != audit.EventServerStart || rec.Seq != before+1 {
		t.Errorf("records appeared while read-only: %d before, then %s at %d", before, rec.Event, rec.Seq)
	}
	r := s.Do("GET", "/api/v1/users/ghost", s.AdminKey, nil)
	mustStatus(t, r, http.StatusNotFound) // the refused create left nothing behind
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "ghost"}), http.StatusCreated)
	s.Stop()
	if _, err := app.VerifyAudit(context.Background(), s.Dir, "", true, nil, ""); err != nil {
		t.Fatal(err)
	}
}

// Key material appears once, in the create response: never in the store
// in clear, the audit log or the operational log.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	setup(t, s, "", nil, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	s.Do("GET", "/api/v1/whoami", key, nil)
	s.Do("GET", "/api/v1/whoami", key+"x", nil) // malformed: must not be logged either
	_, secret, _ := strings.Cut(strings.TrimPrefix(key, "ost_"), "_")
	_, adminSecret, _ := strings.Cut(strings.TrimPrefix(s.AdminKey, "ost_"), "_")
	s.Stop()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "ostiary.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT * FROM audit_records UNION ALL SELECT id, hash, 0,0,0,0,0,0,0,0,0,0,0 FROM api_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		rows.Scan(ptrs...)
		row := fmt.Sprint(vals...)
		for _, sec := range []string{secret, adminSecret} {
			if strings.Contains(row, sec) {
				t.Fatalf("secret found in stored row %s", row)
			}
		}
		n++
	}
	if n < 5 {
		t.Fatalf("scanned only %d rows", n)
	}
	log := s.Log.String()
	if strings.Contains(log, secret) || strings.Contains(log, adminSecret) || !strings.Contains(log, "authentication failed") {
		t.Errorf("operational log leaks a secret or misses the failure:\n%s", log)
	}
}

// Tampering is caught by verify, and a server refuses to start on it: an
// index cut short (verify --index; audit reindex repairs it) and a log cut
// short and rebuilt consistently (the signed checkpoint attests more).
func TestTamperingDetected(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	for i := range 5 {
		mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": fmt.Sprintf("u%d", i)}), http.StatusCreated)
	}
	s.Stop()
	sum, err := app.VerifyAudit(context.Background(), s.Dir, "", true, nil, "")
	if err != nil || sum.Records < 7 || sum.Unattested != 0 || sum.Indexed != sum.Records {
		t.Fatalf("verify: %+v %v", sum, err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.Dir, "ostiary.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM audit_records WHERE seq = (SELECT max(seq) FROM audit_records)"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.VerifyAudit(context.Background(), s.Dir, "", false, nil, ""); err != nil {
		t.Fatalf("the log is whole: %v", err)
	}
	_, err = app.VerifyAudit(context.Background(), s.Dir, "", true, nil, "")
	if !audit.IsChainError(err) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("verify --index after the index was cut: %v", err)
	}
	open := func() error {
		a, err := app.Open(context.Background(), serveConfig(s.Dir), nil, time.Now)
		if err == nil {
			a.Close(context.Background())
		}
		return err
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "does not match the audit log") {
		t.Fatalf("server started on an index cut short: %v", err)
	}
	if n, err := app.ReindexAudit(context.Background(), s.Dir, slog.New(slog.DiscardHandler)); err != nil || n != sum.Records {
		t.Fatalf("reindex: %d %v, want %d records", n, err, sum.Records)
	}
	if _, err := app.VerifyAudit(context.Background(), s.Dir, "", true, nil, ""); err != nil {
		t.Fatalf("verify --index after reindex: %v", err)
	}
	cutLog(t, s.Dir, sum.Records-1)
	_, err = app.VerifyAudit(context.Background(), s.Dir, "", false, nil, "")
	if !audit.IsChainError(err) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("verify after the log was cut: %v", err)
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("server started on a truncated log: %v", err)
	}
}

// cutLog replaces the data directory's audit log by a consistent copy of
// its first n records, as an attacker who knows the format could.
func cutLog(t *testing.T, dir string, n uint64) {
	t.Helper()
	logDir := filepath.Join(dir, "audit")
	short := filepath.Join(t.TempDir(), "audit")
	l, err := wal.Open(short, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wal.ScanDir(logDir, nil, func(i uint64, p []byte) error {
		if i > n {
			return nil
		}
		return l.AppendBatch([][]byte{slices.Clone(p)})
	}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	must(t, os.RemoveAll(logDir))
	must(t, os.Rename(short, logDir))
}
