package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// The front door's own rules: a real Gateway over a real govern.Pipeline,
// with the pipeline's dependencies faked at their interfaces (these fakes
// follow internal/govern's own) and an authenticator that knows a few
// keys. What the client sees, what is on record, and whether the upstream
// was reached. (End to end, over real upstreams and the real store, the
// same rules run in internal/app.)

// doorPolicy allows everything the caller may invoke, but denies one mode.
const doorPolicy = `
version: 1
rules:
  - id: deny-by-arg
    when: "\"mode\" in args && args.mode == \"deny\""
    decision: deny
    message: Not this mode.
`

// Keys the fake authenticator knows: alice (two keys) may call every tool
// of shop, bob only shop.lookup.
const (
	aliceKey  = "alice-key"
	alice2Key = "alice-key-2"
	bobKey    = "bob-key"
)

type door struct {
	g     *Gateway
	pl    *govern.Pipeline
	clock *testutil.Clock
	audit *fakeAudit
	up    *fakeUpstreams
	kill  *fakeKill
	authn *fakeAuthn
}

func newDoor(t *testing.T, tune ...func(*Config)) *door {
	t.Helper()
	pol, err := policy.Parse([]byte(doorPolicy))
	if err != nil {
		t.Fatal(err)
	}
	tool := func(name, schema string) catalog.ToolState {
		def := json.RawMessage(`{"name":"` + name + `","description":"d","inputSchema":` + schema + `}`)
		return catalog.ToolState{Upstream: "shop", Tool: name, Versions: []catalog.Version{{Upstream: "shop", Tool: name, Version: 1, Digest: "d-" + name, Definition: def, Status: catalog.Active}}}
	}
	snap := catalog.NewSnapshot([]spec.Upstream{{Name: "shop", Prefix: "shop"}}, []catalog.ToolState{
		tool("lookup", `{"type":"object","properties":{"mode":{"type":"string"},"n":{"type":"integer"}},"additionalProperties":false}`),
		tool("route", `{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}`),
	}, nil)
	// The SDK checks the principal's hand-over expiry (Now + 1h) against
	// the wall clock: the test's clock starts at it and moves by seconds.
	d := &door{clock: testutil.NewClock(time.Now()), audit: &fakeAudit{}, up: &fakeUpstreams{}, kill: &fakeKill{}}
	d.authn = &fakeAuthn{keys: map[string]authn.Principal{
		aliceKey:  principal(t, "alice", "k-alice", "invoke:shop.*", "discover:shop.*"),
		alice2Key: principal(t, "alice", "k-alice-2", "invoke:shop.*", "discover:shop.*"),
		bobKey:    principal(t, "bob", "k-bob", "invoke:shop.lookup", "discover:shop.lookup"),
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if d.pl, err = govern.New(govern.Config{Catalog: fixedCatalog{snap}, Upstreams: d.up, Auditor: d.audit, Kill: d.kill, Logger: log, Now: d.clock.Now,
		Policy: fixedPolicy{pol}, Approvals: &fakeApprovals{}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.pl.Close)
	failures, err := authn.NewFailureGuard(0, 1, time.Minute, d.audit, log, d.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(failures.Close)
	cfg := Config{Authn: d.authn, AuthFailures: failures, Pipeline: d.pl, Catalog: fixedCatalog{snap}, Kill: d.kill, Auditor: d.audit,
		Logger: log, Now: d.clock.Now, Version: "test"}
	for _, f := range tune {
		f(&cfg)
	}
	if d.g, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.g.Close)
	return d
}

func principal(t *testing.T, user, keyID string, grants ...string) authn.Principal {
	t.Helper()
	g, err := authz.ParseGrants(grants)
	if err != nil {
		t.Fatal(err)
	}
	return authn.Principal{User: user, KeyID: keyID, Perms: authz.Permissions{Roles: g}}
}

// modernMeta is the per-request _meta of a plain 2026-07-28 client.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

// streamingMeta is the same, asking for progress: only the SDK serves it.
const streamingMeta = `"_meta":{"progressToken":"p1","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

func callBody(tool, args, meta string) string {
	return `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `,` + meta + `}}`
}

// modern is the header set of a 2026-07-28 request.
func modern(method, name string) http.Header {
	h := http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {method}}
	if name != "" {
		h.Set("Mcp-Name", name)
	}
	return h
}

// legacy is the header set of a 2025-11-25 request, in session sid if set.
func legacy(sid string) http.Header {
	h := http.Header{"Mcp-Protocol-Version": {"2025-11-25"}}
	if sid != "" {
		h.Set("Mcp-Session-Id", sid)
	}
	return h
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// post sends a POST /mcp with key (none if empty), body and headers, to
// the gateway directly.
func (d *door) post(t *testing.T, key, body string, h http.Header) *httptest.ResponseRecorder {
	t.Helper()
	return d.do(d.req(key, body, h))
}

// req is a POST /mcp as post sends it, to be sent with do.
func (d *door) req(key, body string, h http.Header) *http.Request {
	r := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for k, vs := range h {
		r.Header[http.CanonicalHeaderKey(k)] = vs
	}
	return r
}

func (d *door) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	d.g.ServeHTTP(w, r)
	return w
}

func (d *door) serve(r *http.Request, key string, h http.Header) *httptest.ResponseRecorder {
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for k, vs := range h {
		r.Header[http.CanonicalHeaderKey(k)] = vs
	}
	w := httptest.NewRecorder()
	d.g.ServeHTTP(w, r)
	return w
}

// session opens a 2025 session with key and returns its id.
func (d *door) session(t *testing.T, key string) string {
	t.Helper()
	r := d.post(t, key, initialize, legacy(""))
	sid := r.Header().Get("Mcp-Session-Id")
	if r.Code != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s", r.Code, r.Body)
	}
	if r := d.post(t, key, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, legacy(sid)); r.Code != http.StatusAccepted {
		t.Fatalf("initialized: %d %s", r.Code, r.Body)
	}
	return sid
}

// rpcMessage is the one JSON-RPC response of a JSON body or an event
// stream.
func rpcMessage(t *testing.T, r *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	body := r.Body.String()
	if !strings.HasPrefix(r.Header().Get("Content-Type"), "text/event-stream") {
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("no JSON-RPC message in %d %q: %v", r.Code, body, err)
		}
		return v
	}
	for _, line := range strings.Split(body, "\n") {
		var v map[string]any
		if data, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(data), &v) == nil && v["method"] == nil {
			return v
		}
	}
	t.Fatalf("no JSON-RPC response in %d %q", r.Code, body)
	return nil
}

// rpcErrorOf is the error of a JSON-RPC answer: its code and message.
func rpcErrorOf(t *testing.T, r *httptest.ResponseRecorder) (float64, string) {
	t.Helper()
	m := rpcMessage(t, r)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error: %d %s", r.Code, r.Body)
	}
	code, _ := e["code"].(float64)
	msg, _ := e["message"].(string)
	return code, msg
}

// fakeAuthn knows the keys it was given; "unavailable" stands for a
// credential store that cannot be read.
type fakeAuthn struct {
	keys map[string]authn.Principal
}

func (a *fakeAuthn) Authenticate(_ context.Context, h string) (*authn.Principal, error) {
	if h == "" {
		return nil, &authn.Failure{Reason: authn.ReasonMissing}
	}
	tok, ok := authn.BearerToken(h)
	if !ok {
		return nil, &authn.Failure{Reason: authn.ReasonMalformed}
	}
	if tok == "unavailable" {
		return nil, fault.Wrap(fault.Unavailable, "lookup credential", errors.New("database is locked"))
	}
	p, ok := a.keys[tok]
	if !ok {
		return nil, &authn.Failure{Reason: authn.ReasonUnknown, KeyID: tok}
	}
	return &p, nil // a fresh principal per request, as the real one
}

type fixedCatalog struct{ s *catalog.Snapshot }

func (c fixedCatalog) Snapshot() *catalog.Snapshot { return c.s }

type fixedPolicy struct{ p *policy.Policy }

func (f fixedPolicy) Current() *policy.Policy { return f.p }

type fakeAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (a *fakeAudit) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Record.Outcome == "" {
		e.Record.Outcome = audit.Success
	}
	a.recs = append(a.recs, e.Record)
	return e.Record, nil
}

// of returns the records of one event (all events if empty), oldest first.
func (a *fakeAudit) of(event string) []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Record
	for _, r := range a.recs {
		if event == "" || r.Event == event {
			out = append(out, r)
		}
	}
	return out
}

// request returns the records of one request id.
func (a *fakeAudit) request(id string) []audit.Record {
	var out []audit.Record
	for _, r := range a.of("") {
		if r.RequestID == id {
			out = append(out, r)
		}
	}
	return out
}

// fakeKill blocks a user, when set, with switch ks-9.
type fakeKill struct {
	mu   sync.Mutex
	user string
}

func (k *fakeKill) Blocking(sub killswitch.Subject) (killswitch.Switch, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.user != "" && sub.User == k.user {
		return killswitch.Switch{ID: "ks-9"}, true
	}
	return killswitch.Switch{}, false
}

func (k *fakeKill) SetCutter(killswitch.Cutter) {}

// fakeUpstreams answers every tool call "ok", noting whether the front
// door treated it as a 2026-07-28 request.
type fakeUpstreams struct {
	mu     sync.Mutex
	calls  int
	modern []bool
}

func (u *fakeUpstreams) count() int { u.mu.Lock(); defer u.mu.Unlock(); return u.calls }

func (u *fakeUpstreams) Call(_ context.Context, _ upstream.Caller, _ spec.Upstream, _ upstream.ToolCall, relay *upstream.Relay) (*mcp.CallToolResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	u.modern = append(u.modern, relay.Modern)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
}

func (u *fakeUpstreams) GetPrompt(context.Context, upstream.Caller, spec.Upstream, upstream.PromptGet) (*mcp.GetPromptResult, error) {
	return &mcp.GetPromptResult{}, nil
}

func (u *fakeUpstreams) Complete(context.Context, upstream.Caller, spec.Upstream, *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	return &mcp.CompleteResult{}, nil
}

func (u *fakeUpstreams) ReadResource(context.Context, upstream.Caller, spec.Upstream, string, upstream.Continuation) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{}, nil
}

// fakeApprovals holds nothing: doorPolicy never asks for approval.
type fakeApprovals struct{}

func (fakeApprovals) Claim(context.Context, approval.Call, string, string) (approval.Approval, bool, error) {
	return approval.Approval{}, false, nil
}

func (fakeApprovals) Request(_ context.Context, a approval.Approval) (approval.Approval, bool, error) {
	return a, true, nil
}

func (fakeApprovals) Wait(string) (<-chan struct{}, func()) { return make(chan struct{}), func() {} }

func (fakeApprovals) Mine(context.Context, string, string) ([]approval.Approval, error) {
	return nil, nil
}

// idOf makes a well-formed X-Request-ID of a test case's name.
func idOf(prefix, name string) string {
	return prefix + "-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
}
