package govern

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// The pipeline's own rules, stage by stage, with every dependency faked at
// its interface: what the client sees, what is on record, and whether the
// upstream was reached. (End-to-end, over HTTP and real upstreams, the
// same rules are exercised in internal/app.)

// testPolicy: deny and approve by argument, allow the rest.
const testPolicy = `
version: 1
rules:
  - id: deny-by-arg
    when: "\"mode\" in args && args.mode == \"deny\""
    decision: deny
    message: Not this mode.
  - id: approve-by-arg
    when: "\"mode\" in args && args.mode == \"approve\""
    decision: approve
`

type world struct {
	pl        *Pipeline
	audit     *fakeAudit
	up        *fakeUpstreams
	kill      *fakeKill
	approvals *fakeApprovals
}

func newWorld(t *testing.T, tune ...func(*Config)) *world {
	t.Helper()
	pol, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	def := func(schema string, annotations string) json.RawMessage {
		return json.RawMessage(`{"name":"x","description":"d","inputSchema":` + schema + `,"annotations":` + annotations + `}`)
	}
	tool := func(name string, d json.RawMessage, changed bool) catalog.ToolState {
		ts := catalog.ToolState{Upstream: "shop", Tool: name, Versions: []catalog.Version{{Upstream: "shop", Tool: name, Version: 1, Digest: "d-" + name, Definition: d, Status: catalog.Active}}}
		if changed {
			ts.ChangedAt = time.Unix(1, 0)
		}
		return ts
	}
	obj := `{"type":"object","properties":{"mode":{"type":"string"},"n":{"type":"integer"}},"additionalProperties":false}`
	snap := catalog.NewSnapshot([]spec.Upstream{{Name: "shop", Prefix: "shop"}}, []catalog.ToolState{
		tool("lookup", def(obj, `{"readOnlyHint":true}`), false),
		tool("pay", def(obj, `{}`), false),
		tool("moved", def(obj, `{}`), true),
		tool("broken", def(`{"type":"object","properties":{"a":{"type":"nope"}}}`, `{}`), false),
	}, map[string]spec.Listing{"shop": {Prompts: []*mcp.Prompt{{Name: "greet"}}}})
	w := &world{audit: &fakeAudit{}, up: &fakeUpstreams{}, kill: &fakeKill{}, approvals: &fakeApprovals{}}
	w.up.audit = w.audit
	cfg := Config{Catalog: fixedCatalog{snap}, Upstreams: w.up, Auditor: w.audit, Kill: w.kill,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Unix(1_800_000_000, 0) },
		Policy: fixedPolicy{pol}, Approvals: w.approvals, CallsPerUser: 2}
	for _, f := range tune {
		f(&cfg)
	}
	if w.pl, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.pl.Close)
	return w
}

func principal(t *testing.T, user string, grants ...string) *authn.Principal {
	t.Helper()
	g, err := authz.ParseGrants(grants)
	if err != nil {
		t.Fatal(err)
	}
	return &authn.Principal{User: user, KeyID: "k-" + user, RequestID: "req-1", Perms: authz.Permissions{Roles: g}}
}

func (w *world) call(t *testing.T, p *authn.Principal, name, args string) (mcp.Result, error) {
	t.Helper()
	req := ToolRequest{Name: name}
	req.Args, req.ArgErr = ParseArgs(json.RawMessage(args))
	return w.pl.CallTool(context.Background(), p, req, &upstream.Relay{Ctx: context.Background(), RequestID: p.RequestID})
}

// TestCallStages: each stage's refusal, as the client sees it, as it is
// recorded, and that nothing reached the upstream.
func TestCallStages(t *testing.T) {
	alice := func(t *testing.T) *authn.Principal { return principal(t, "alice", "invoke:shop.*") }
	for _, tc := range []struct {
		name       string
		tool, args string
		who        func(*testing.T) *authn.Principal
		prepare    func(*world)
		wantErr    string // in the JSON-RPC error the client gets ("" none)
		wantTool   string // in the tool error the client gets ("" none)
		outcome    audit.Outcome
		reason     string
		upstream   int // calls that reached it
	}{
		{name: "allowed", tool: "shop.lookup", args: `{"n":1}`, who: alice, outcome: audit.Success, upstream: 1},
		{name: "missing tool", tool: "shop.nothing", args: `{}`, who: alice, wantErr: `unknown tool "shop.nothing"`, outcome: audit.Denied, reason: ReasonUnknownTool},
		{name: "hidden tool looks missing", tool: "shop.pay", args: `{}`, who: func(t *testing.T) *authn.Principal { return principal(t, "bob", "invoke:shop.lookup") },
			wantErr: `unknown tool "shop.pay"`, outcome: audit.Denied, reason: ReasonNotPermitted},
		{name: "kill switch looks missing", tool: "shop.lookup", args: `{}`, who: alice, prepare: func(w *world) { w.kill.block("shop") },
			wantErr: `unknown tool "shop.lookup"`, outcome: audit.Denied, reason: ReasonKilled},
		{name: "definition changed upstream", tool: "shop.moved", args: `{}`, who: alice, wantErr: ReasonDefinitionChanged, outcome: audit.Denied, reason: ReasonDefinitionChanged},
		{name: "invalid pinned schema", tool: "shop.broken", args: `{}`, who: alice, wantErr: "invalid pinned input schema", outcome: audit.Failed, reason: ReasonBadSchema},
		{name: "arguments off the schema", tool: "shop.lookup", args: `{"n":"one"}`, who: alice, wantErr: "invalid arguments", outcome: audit.Failed, reason: ReasonBadArguments},
		{name: "ambiguous arguments", tool: "shop.lookup", args: `{"n":1,"N":2}`, who: alice, wantErr: "invalid arguments", outcome: audit.Failed, reason: ReasonBadArguments},
		{name: "policy deny", tool: "shop.pay", args: `{"mode":"deny"}`, who: alice, wantTool: "Denied by policy", outcome: audit.Denied, reason: ReasonPolicyDeny},
		{name: "held for approval", tool: "shop.pay", args: `{"mode":"approve"}`, who: alice, wantTool: "needs approval", outcome: audit.Denied, reason: ReasonHeld},
		{name: "approved once", tool: "shop.pay", args: `{"mode":"approve"}`, who: alice, prepare: func(w *world) { w.approvals.approved = true },
			outcome: audit.Success, upstream: 1},
		{name: "audit down: not performed", tool: "shop.lookup", args: `{}`, who: alice, prepare: func(w *world) { w.audit.fail = true },
			wantErr: ErrAudit.Message},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.prepare != nil {
				tc.prepare(w)
			}
			res, err := w.call(t, tc.who(t), tc.tool, tc.args)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one with %q (result %+v)", err, tc.wantErr, res)
				}
			case err != nil:
				t.Fatalf("error %v", err)
			case tc.wantTool != "":
				if r := res.(*mcp.CallToolResult); !r.IsError || !strings.Contains(text(r), tc.wantTool) {
					t.Errorf("result %s, want a tool error with %q", text(r), tc.wantTool)
				}
			}
			if n := w.up.count(); n != tc.upstream {
				t.Errorf("the upstream was reached %d times, want %d", n, tc.upstream)
			}
			if tc.outcome == "" {
				if len(w.audit.recs) != 0 {
					t.Errorf("recorded %+v", w.audit.recs)
				}
				return
			}
			decision := w.audit.first(EventToolCall)
			if decision == nil || decision.Outcome != tc.outcome || decision.Reason != tc.reason {
				t.Fatalf("decision record %+v, want %s/%s", decision, tc.outcome, tc.reason)
			}
			if tc.upstream > 0 {
				if out := w.audit.first(EventToolResult); out == nil || w.audit.index(EventToolResult) < w.audit.index(EventToolCall) {
					t.Errorf("no outcome after the decision: %+v", w.audit.recs)
				}
				if w.up.firstAt < w.audit.index(EventToolCall)+1 {
					t.Errorf("the upstream was called before the decision was on record")
				}
			}
		})
	}
}

// TestHiddenLooksMissing: a hidden, a killed and a missing tool of one
// name give the client byte-identical errors (the missing one from a
// catalog without it).
func TestHiddenLooksMissing(t *testing.T) {
	empty := newWorld(t, func(c *Config) { c.Catalog = fixedCatalog{catalog.NewSnapshot(nil, nil, nil)} })
	_, missing := empty.call(t, principal(t, "alice", "invoke:shop.*"), "shop.pay", `{}`)
	if missing == nil {
		t.Fatal("a missing tool was called")
	}
	w := newWorld(t)
	_, hidden := w.call(t, principal(t, "bob", "invoke:shop.lookup"), "shop.pay", `{}`)
	w.kill.block("shop")
	_, killed := w.call(t, principal(t, "alice", "invoke:shop.*"), "shop.pay", `{}`)
	want, _ := json.Marshal(missing)
	for what, err := range map[string]error{"hidden": hidden, "killed": killed} {
		if got, _ := json.Marshal(err); err == nil || string(got) != string(want) {
			t.Errorf("the %s tool's error %s differs from the missing tool's %s", what, got, want)
		}
	}
	if w.up.count() != 0 {
		t.Error("the upstream was reached")
	}
}

// TestOutcomes: what the upstream made of a call is recorded as its own
// reason, and the client is told the truth.
func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		reason  string
		client  string
		hidden  string // what the client must not be told
		attempt int
	}{
		{name: "answered", reason: "", attempt: 1},
		{name: "refused by the upstream", err: &jsonrpc.Error{Code: -32000, Message: "no"}, reason: ReasonRefusedUpstream, client: "no", attempt: 1},
		{name: "did not answer: retried (read-only)", err: errors.New("connection reset"), reason: ReasonUpstream, client: "did not answer", attempt: maxAttempts},
		// The client is told the class of failure, never the address.
		{name: "connection refused", err: fmt.Errorf("connect to upstream shop: %w", &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 8443},
			Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), reason: ReasonUpstream, client: "upstream shop did not answer the call: connection refused (request", hidden: "10.9.8.7", attempt: maxAttempts},
		{name: "connect timed out", err: fmt.Errorf("connect to upstream shop: %w", context.DeadlineExceeded), reason: ReasonUpstream, client: "did not answer the call: timed out", attempt: maxAttempts},
		{name: "refused, as text only", err: errors.New(`Post "https://10.9.8.7:8443/mcp": dial tcp 10.9.8.7:8443: connect: connection refused`), reason: ReasonUpstream,
			client: "did not answer the call: connection refused", hidden: "10.9.8.7", attempt: maxAttempts},
		{name: "an HTTP error status", err: errors.New(`calling "tools/call": rejected by transport: sending "tools/call": Service Unavailable`), reason: ReasonUpstream,
			client: "did not answer the call: HTTP 503 Service Unavailable", attempt: maxAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.up.err = tc.err
			res, err := w.call(t, principal(t, "alice", "invoke:shop.*"), "shop.lookup", `{}`)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = text(res.(*mcp.CallToolResult))
			}
			if !strings.Contains(got, tc.client) || (tc.hidden != "" && strings.Contains(got, tc.hidden)) {
				t.Errorf("client got %q, want %q (and not %q)", got, tc.client, tc.hidden)
			}
			out := w.audit.first(EventToolResult)
			if out == nil || out.Reason != tc.reason {
				t.Fatalf("outcome %+v, want reason %q", out, tc.reason)
			}
			if w.up.count() != tc.attempt {
				t.Errorf("%d attempts, want %d", w.up.count(), tc.attempt)
			}
		})
	}
}

// TestOutcomeCitesDecision: the outcome of a call that went upstream
// names its decision record by seq, for tools, prompts and resources
// alike, so the two pair even when a client sends every request under one
// request id (as it may, with X-Request-ID or a Traceparent).
func TestOutcomeCitesDecision(t *testing.T) {
	w := newWorld(t)
	alice := principal(t, "alice", "invoke:shop.*")
	w.audit.recs = append(w.audit.recs, audit.Record{Event: "padding"}) // seqs start at 2: a zero cannot pass
	if _, err := w.call(t, alice, "shop.lookup", `{}`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.call(t, alice, "shop.lookup", `{}`); err != nil { // the same request id and target again
		t.Fatal(err)
	}
	if _, err := w.pl.GetPrompt(context.Background(), alice, &mcp.GetPromptParams{Name: "shop.greet"}, upstream.Continuation{}); err != nil {
		t.Fatal(err)
	}
	pairs := map[string]string{EventToolResult: EventToolCall, EventPromptResult: EventPromptGet}
	var decisions []uint64
	cited := 0
	for _, r := range w.audit.recs {
		switch {
		case r.Event == EventToolCall || r.Event == EventPromptGet:
			decisions = append(decisions, r.Seq)
		case pairs[r.Event] != "":
			if len(decisions) == 0 || r.Detail["decision_seq"] != decisions[len(decisions)-1] {
				t.Errorf("%s %d cites %v, want decision %v", r.Event, r.Seq, r.Detail["decision_seq"], decisions)
			}
			cited++
		}
	}
	if len(decisions) != 3 || cited != 3 {
		t.Errorf("%d decisions, %d outcomes citing them; want 3 and 3", len(decisions), cited)
	}
}

// TestCallsCap: a user's calls in flight are capped; another user's are
// not affected, and a call that ended gives its place back.
func TestCallsCap(t *testing.T) {
	w := newWorld(t)
	w.up.gate = make(chan struct{})
	alice := principal(t, "alice", "invoke:shop.*")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { w.call(t, alice, "shop.lookup", `{}`) })
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.up.count() >= 2 }, "the two calls never reached the upstream")
	if _, err := w.call(t, alice, "shop.lookup", `{}`); err == nil || !strings.Contains(err.Error(), "too many calls in flight") {
		t.Errorf("a third call in flight: %v", err)
	}
	if d := w.audit.last(EventToolCall); d == nil || d.Reason != ReasonCallsCap {
		t.Errorf("the refusal on record: %+v", d)
	}
	close(w.up.gate)
	wg.Wait()
	if _, err := w.call(t, alice, "shop.lookup", `{}`); err != nil {
		t.Errorf("after the two ended: %v", err)
	}
}

// TestBuiltins: Ostiary's own tools answer without an upstream and search
// only what the caller may discover.
func TestBuiltins(t *testing.T) {
	w := newWorld(t)
	res, err := w.call(t, principal(t, "carol", "discover:shop.lookup"), "discover_tools", `{"query":"shop"}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(res.(*mcp.CallToolResult)); !strings.Contains(got, "shop.lookup") || strings.Contains(got, "shop.pay") {
		t.Errorf("discover_tools: %s", got)
	}
	if _, err := w.call(t, principal(t, "carol"), "discover_tools", `{"limit":1000}`); err == nil {
		t.Error("a limit over 100 was accepted")
	}
	if w.up.count() != 0 {
		t.Error("a built-in reached the upstream")
	}
}

// TestPromptStages: prompts share resolve, authorize and the kill switch.
func TestPromptStages(t *testing.T) {
	w := newWorld(t)
	get := func(p *authn.Principal) error {
		_, err := w.pl.GetPrompt(context.Background(), p, &mcp.GetPromptParams{Name: "shop.greet"}, upstream.Continuation{})
		return err
	}
	if err := get(principal(t, "alice", "invoke:shop.*")); err != nil {
		t.Errorf("allowed: %v", err)
	}
	if err := get(principal(t, "bob")); err == nil || !strings.Contains(err.Error(), `unknown prompt "shop.greet"`) {
		t.Errorf("hidden: %v", err)
	}
	w.kill.block("shop")
	if err := get(principal(t, "alice", "invoke:shop.*")); err == nil {
		t.Error("killed: got through")
	}
	if w.up.prompts != 1 {
		t.Errorf("%d prompts reached the upstream, want 1", w.up.prompts)
	}
	if r := w.audit.last(EventPromptGet); r == nil || r.Reason != ReasonKilled || r.Detail["killswitch"] != "ks-1" {
		t.Errorf("the killed request's record: %+v", r)
	}
}

// TestCut: a kill switch engaged while a call runs cuts it, and the
// outcome says so.
func TestCut(t *testing.T) {
	w := newWorld(t)
	w.up.gate = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := w.call(t, principal(t, "alice", "invoke:shop.*"), "shop.lookup", `{}`)
		done <- err
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return w.up.count() >= 1 }, "the call never reached the upstream")
	if n := w.pl.Cut(func(s killswitch.Subject) bool { return s.Upstream == "shop" }); n != 1 {
		t.Errorf("cut %d calls, want 1", n)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "kill switch") {
		t.Errorf("the cut call: %v", err)
	}
	if out := w.audit.first(EventToolResult); out == nil || out.Reason != ReasonKilled {
		t.Errorf("outcome %+v", out)
	}
}

// TestStopCutsParkedCall: a 2026-07-28 call under way when the pipeline
// stops is recorded gateway-stopping, even when its upstream, its question
// withdrawn, answers with an error result of its own; the client is told
// the gateway stopped.
func TestStopCutsParkedCall(t *testing.T) {
	w := newWorld(t)
	w.up.gate, w.up.answerCut = make(chan struct{}), true
	done := make(chan mcp.Result, 1)
	go func() {
		req := ToolRequest{Name: "shop.lookup"}
		req.Args, req.ArgErr = ParseArgs(json.RawMessage(`{}`))
		res, _ := w.pl.CallTool(context.Background(), principal(t, "alice", "invoke:shop.*"), req, &upstream.Relay{Ctx: context.Background(), Modern: true})
		done <- res
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return w.up.count() >= 1 }, "the call never reached the upstream")
	w.pl.Drain()
	w.pl.Close()
	if res := <-done; res == nil || !strings.Contains(text(res.(*mcp.CallToolResult)), "the gateway is stopping") {
		t.Errorf("the client got %+v", res)
	}
	if out := w.audit.first(EventToolResult); out == nil || out.Outcome != audit.Failed || out.Reason != ReasonGatewayStopping {
		t.Errorf("outcome %+v", out)
	}
}

// TestDrainCutsEveryCall: Drain cuts a 2025-era call under way too (the
// SDK runs a session's calls in the session's context, which the stop's
// cancelling of request contexts does not reach), answered and recorded
// as gateway-stopping even when its upstream answers the cut with an
// error result; while a call its own client cancelled, with no stop, keeps
// the upstream's answer as its outcome.
func TestDrainCutsEveryCall(t *testing.T) {
	start := func(w *world, ctx context.Context) chan mcp.Result {
		done := make(chan mcp.Result, 1)
		go func() {
			req := ToolRequest{Name: "shop.lookup"}
			req.Args, req.ArgErr = ParseArgs(json.RawMessage(`{}`))
			res, _ := w.pl.CallTool(ctx, principal(t, "alice", "invoke:shop.*"), req, &upstream.Relay{Ctx: ctx})
			done <- res
		}()
		testutil.Eventually(t, 5*time.Second, func() bool { return w.up.count() >= 1 }, "the call never reached the upstream")
		return done
	}
	w := newWorld(t)
	w.up.gate, w.up.answerCut = make(chan struct{}), true
	done := start(w, context.Background())
	w.pl.Drain()
	if res := <-done; res == nil || !strings.Contains(text(res.(*mcp.CallToolResult)), "the gateway is stopping") {
		t.Errorf("the client got %+v, want the stop named", res)
	}
	if out := w.audit.first(EventToolResult); out == nil || out.Outcome != audit.Failed || out.Reason != ReasonGatewayStopping {
		t.Errorf("outcome %+v, want gateway-stopping", out)
	}

	w = newWorld(t)
	w.up.gate, w.up.answerCut = make(chan struct{}), true
	ctx, cancel := context.WithCancel(context.Background())
	done = start(w, ctx)
	cancel()
	if res := <-done; res == nil || text(res.(*mcp.CallToolResult)) != "elicitation failed" {
		t.Errorf("cancelled by its client: the client got %+v, want the upstream's answer", res)
	}
	if out := w.audit.first(EventToolResult); out == nil || out.Outcome != audit.Success || out.Detail["is_error"] != true {
		t.Errorf("cancelled by its client: outcome %+v, want the upstream's error answer, relayed", out)
	}
}

// TestNothingSentAfterDrain: a call or prompt that reaches the upstream
// stage once the stop has begun (say, approved while the server drains)
// is not sent at all, and is recorded as cut by the stop.
func TestNothingSentAfterDrain(t *testing.T) {
	w := newWorld(t)
	w.pl.Drain()
	alice := principal(t, "alice", "invoke:shop.*")
	res, err := w.call(t, alice, "shop.lookup", `{}`)
	if err != nil || !strings.Contains(text(res.(*mcp.CallToolResult)), "the gateway is stopping") {
		t.Errorf("the client got %+v, %v", res, err)
	}
	if _, err := w.pl.GetPrompt(context.Background(), alice, &mcp.GetPromptParams{Name: "shop.greet"}, upstream.Continuation{}); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("a prompt after the drain: %v", err)
	}
	if w.up.count() != 0 || w.up.prompts != 0 {
		t.Errorf("sent after the drain: %d calls, %d prompts", w.up.count(), w.up.prompts)
	}
	for _, ev := range []string{EventToolResult, EventPromptResult} {
		if out := w.audit.first(ev); out == nil || out.Outcome != audit.Failed || out.Reason != ReasonGatewayStopping {
			t.Errorf("%s: %+v", ev, out)
		}
	}
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

type fixedCatalog struct{ s *catalog.Snapshot }

func (c fixedCatalog) Snapshot() *catalog.Snapshot { return c.s }

type fixedPolicy struct{ p *policy.Policy }

func (f fixedPolicy) Current() *policy.Policy { return f.p }

type fakeAudit struct {
	mu   sync.Mutex
	recs []audit.Record
	fail bool
}

func (a *fakeAudit) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return audit.Record{}, errors.New("disk full")
	}
	if e.Record.Outcome == "" {
		e.Record.Outcome = audit.Success
	}
	e.Record.Seq = uint64(len(a.recs) + 1)
	a.recs = append(a.recs, e.Record)
	return e.Record, nil
}

func (a *fakeAudit) index(event string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.recs {
		if r.Event == event {
			return i
		}
	}
	return -1
}

func (a *fakeAudit) first(event string) *audit.Record {
	if i := a.index(event); i >= 0 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return &a.recs[i]
	}
	return nil
}

func (a *fakeAudit) last(event string) *audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.recs) - 1; i >= 0; i-- {
		if a.recs[i].Event == event {
			return &a.recs[i]
		}
	}
	return nil
}

type fakeKill struct {
	mu       sync.Mutex
	upstream string
}

func (k *fakeKill) block(upstream string) { k.mu.Lock(); k.upstream = upstream; k.mu.Unlock() }

func (k *fakeKill) Blocking(sub killswitch.Subject) (killswitch.Switch, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.upstream != "" && sub.Upstream == k.upstream {
		return killswitch.Switch{ID: "ks-1"}, true
	}
	return killswitch.Switch{}, false
}

func (k *fakeKill) SetCutter(killswitch.Cutter) {}

// fakeUpstreams answers every call (after gate, if set, is closed or the
// call's context ends) with err or an ok result; firstAt is how many
// records were on file when the first call came.
type fakeUpstreams struct {
	mu      sync.Mutex
	calls   int
	prompts int
	err     error
	gate    chan struct{}
	// answerCut: a call cut while it waits at gate is answered with an
	// error result, as an upstream whose question was withdrawn may.
	answerCut bool
	firstAt   int
	audit     *fakeAudit
}

func (u *fakeUpstreams) count() int { u.mu.Lock(); defer u.mu.Unlock(); return u.calls }

func (u *fakeUpstreams) Call(ctx context.Context, _ upstream.Caller, _ spec.Upstream, _ upstream.ToolCall, _ *upstream.Relay) (*mcp.CallToolResult, error) {
	onFile := 0
	if u.audit != nil {
		u.audit.mu.Lock()
		onFile = len(u.audit.recs)
		u.audit.mu.Unlock()
	}
	u.mu.Lock()
	if u.calls++; u.calls == 1 {
		u.firstAt = onFile
	}
	gate, err := u.gate, u.err
	u.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			if u.answerCut {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "elicitation failed"}}}, nil
			}
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
}

func (u *fakeUpstreams) GetPrompt(context.Context, upstream.Caller, spec.Upstream, upstream.PromptGet) (*mcp.GetPromptResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.prompts++
	return &mcp.GetPromptResult{}, nil
}

func (u *fakeUpstreams) Complete(context.Context, upstream.Caller, spec.Upstream, *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	return &mcp.CompleteResult{}, nil
}

func (u *fakeUpstreams) ReadResource(context.Context, upstream.Caller, spec.Upstream, string, upstream.Continuation) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{}, nil
}

// fakeApprovals holds every call (approved: lets it claim an approval).
type fakeApprovals struct {
	mu       sync.Mutex
	approved bool
}

func (f *fakeApprovals) Claim(_ context.Context, c approval.Call, _, _ string) (approval.Approval, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return approval.Approval{ID: "apr_1", Tool: c.Tool}, f.approved, nil
}

func (f *fakeApprovals) Request(_ context.Context, a approval.Approval) (approval.Approval, bool, error) {
	a.ID, a.Status, a.ExpiresAt = "apr_1", approval.Pending, time.Unix(1_800_003_600, 0)
	return a, true, nil
}

func (f *fakeApprovals) Wait(string) (<-chan struct{}, func()) { return make(chan struct{}), func() {} }

func (f *fakeApprovals) Mine(context.Context, string, string) ([]approval.Approval, error) {
	return []approval.Approval{{ID: "apr_1", Status: approval.Pending}}, nil
}
