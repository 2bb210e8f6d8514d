package adminapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/review"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// The admin API's own rules, on the real services over a fresh SQLite
// store and audit chain, wired as internal/app wires them; only what
// reaches out of the process (upstreams) is faked. Every principal comes
// from authenticating a key through the API itself.

var ctx = context.Background()

type fixture struct {
	clock    *testutil.Clock
	env      *sqlitetest.Env
	authn    *authn.Authenticator
	api      *API
	adminKey string
}

func newFixture(t *testing.T, tune ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{clock: testutil.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))}
	now := f.clock.Now
	f.env = sqlitetest.New(t, now)
	st, w := f.env.Store, f.env.Writer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hasher, err := authn.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if f.adminKey, err = identity.Bootstrap(ctx, w, hasher, now()); err != nil {
		t.Fatal(err)
	}
	if f.authn, err = authn.NewAuthenticator(st, hasher, now); err != nil {
		t.Fatal(err)
	}
	ids, err := identity.NewService(st, w, f.authn, hasher, now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(st, w, []byte("fedcba9876543210fedcba9876543210"), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Open(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(ctx, st, w, noUpstreams{}, now, log)
	if err != nil {
		t.Fatal(err)
	}
	kill, err := killswitch.New(ctx, st, w, now)
	if err != nil {
		t.Fatal(err)
	}
	policies, err := policy.NewService(ctx, st, w, now)
	if err != nil {
		t.Fatal(err)
	}
	approvals, err := approval.New(st, w, now)
	if err != nil {
		t.Fatal(err)
	}
	failures, err := authn.NewFailureGuard(0, 1, time.Minute, w, log, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(failures.Close)
	pl, err := govern.New(govern.Config{Catalog: cat, Upstreams: noUpstreams{}, Auditor: w, Kill: kill, Logger: log, Now: now,
		Policy: policies, Approvals: approvals})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl.Close)
	changes, err := change.New(change.Config{Store: st, Auditor: w, Audit: st, Policy: policies, Catalog: cat, Identity: st, Identities: ids, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	reviews, err := review.New(review.Config{Store: st, Directory: st, Identities: ids, History: st, Tools: func() []string { return nil }, Auditor: w, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Authn: f.authn, Failures: failures, Identity: ids, Catalog: cat, Kill: kill, Vault: v, Auditor: w, Audit: st, Index: w,
		Logger: log, Now: now, Policy: policies, Explainer: pl, Approvals: approvals, Changes: changes, Reviews: reviews}
	for _, fn := range tune {
		fn(&cfg)
	}
	if f.api, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// request is one request to the API: Authorization "Bearer KEY" when key
// is set, a JSON body when body is.
type request struct {
	method, path, key, body string
	header                  http.Header
}

func (f *fixture) serve(t *testing.T, rq request) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
	if rq.key != "" {
		r.Header.Set("Authorization", "Bearer "+rq.key)
	}
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range rq.header {
		r.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, r)
	return rec
}

// do sends a request with the admin's key.
func (f *fixture) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	return f.serve(t, request{method: method, path: path, key: f.adminKey, body: body})
}

// keyFor creates user with roles (if not there yet) and a key for them,
// through the API, and returns the key text and id.
func (f *fixture) keyFor(t *testing.T, user string, roles ...string) (text, id string) {
	t.Helper()
	if f.do(t, "GET", "/api/v1/users/"+user, "").Code == http.StatusNotFound {
		rs, _ := json.Marshal(roles)
		if r := f.do(t, "POST", "/api/v1/users", `{"name":"`+user+`","roles":`+string(rs)+`}`); r.Code != http.StatusCreated {
			t.Fatalf("create user %s: %d %s", user, r.Code, r.Body)
		}
	}
	r := f.do(t, "POST", "/api/v1/keys", `{"user":"`+user+`","expires_in":"1h"}`)
	var ck CreatedKey
	decodeBody(t, r, http.StatusCreated, &ck)
	return ck.APIKey, ck.Key.ID
}

// records returns what the audit log holds for one request id, oldest
// first.
func (f *fixture) records(t *testing.T, requestID string) []audit.Record {
	t.Helper()
	rs, err := f.env.QueryAudit(ctx, audit.Query{RequestID: requestID, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
		rs[i], rs[j] = rs[j], rs[i]
	}
	return rs
}

// only returns the one record of a request, failing if there is not
// exactly one.
func (f *fixture) only(t *testing.T, r *httptest.ResponseRecorder) audit.Record {
	t.Helper()
	rs := f.records(t, r.Header().Get("X-Request-ID"))
	if len(rs) != 1 {
		t.Fatalf("records of request %s: %+v, want one", r.Header().Get("X-Request-ID"), rs)
	}
	return rs[0]
}

func decodeBody(t *testing.T, r *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status %d, want %d: %s", r.Code, status, r.Body)
	}
	if ct := r.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(r.Body.Bytes(), v); err != nil {
		t.Fatalf("%s: %v", r.Body, err)
	}
}

// errorOf decodes an error answer of the given status.
func errorOf(t *testing.T, r *httptest.ResponseRecorder, status int) ErrorDetail {
	t.Helper()
	var e ErrorBody
	decodeBody(t, r, status, &e)
	if e.RequestID == "" || e.RequestID != r.Header().Get("X-Request-ID") {
		t.Errorf("error body request id %q, header %q", e.RequestID, r.Header().Get("X-Request-ID"))
	}
	return e.Error
}

// noUpstreams is the pool of a server that reaches no upstream: these
// tests exercise the door, not the connectors.
type noUpstreams struct{}

var errNoUpstream = fault.New(fault.Unavailable, "no upstream in this test")

func (noUpstreams) List(context.Context, spec.Upstream) (spec.Listing, error) {
	return spec.Listing{}, errNoUpstream
}
func (noUpstreams) Admit(spec.Upstream) error { return nil }
func (noUpstreams) Call(context.Context, upstream.Caller, spec.Upstream, upstream.ToolCall, *upstream.Relay) (*mcp.CallToolResult, error) {
	return nil, errNoUpstream
}
func (noUpstreams) GetPrompt(context.Context, upstream.Caller, spec.Upstream, upstream.PromptGet) (*mcp.GetPromptResult, error) {
	return nil, errNoUpstream
}
func (noUpstreams) Complete(context.Context, upstream.Caller, spec.Upstream, *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	return nil, errNoUpstream
}
func (noUpstreams) ReadResource(context.Context, upstream.Caller, spec.Upstream, string, upstream.Continuation) (*mcp.ReadResourceResult, error) {
	return nil, errNoUpstream
}
