package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"reflect"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Audit event types of the gateway.
const (
	EventToolsList     = "tools-list"
	EventToolCall      = "tool-call"   // the decision, recorded before anything is forwarded
	EventToolResult    = "tool-result" // the outcome
	EventMethodRefused = "method-refused"
)

// Reason codes of refused calls. Recorded, never shown: a hidden tool and
// a missing one look the same to the client.
const (
	ReasonUnknownTool  = "tool-unknown"
	ReasonNotPermitted = "tool-not-permitted"
	ReasonBadArguments = "arguments-invalid"
	ReasonBadSchema    = "tool-schema-invalid"
	ReasonUpstream     = "upstream-error"
	// Outcomes of calls that reached the upstream and did not complete,
	// each its own reason on the tool-result record.
	ReasonTimeout         = "timeout"             // no answer within the call's bound
	ReasonClientCancelled = "client-cancelled"    // the client went away or cancelled
	ReasonGatewayStopping = "gateway-stopping"    // cut by a graceful stop
	ReasonRefusedUpstream = "refused-by-upstream" // the upstream answered with a JSON-RPC error
	ReasonCircuitOpen     = "circuit-open"        // refused by the upstream's open circuit breaker
	ReasonUpstreamBusy    = "upstream-busy"       // no fair share of the upstream's slots was free
	// ReasonHeaderMismatch: Mcp-Param-* headers disagree with the arguments.
	ReasonHeaderMismatch = "header-mismatch"
	// ReasonDefinitionChanged: the upstream presents a definition other
	// than the pinned one, not yet reviewed. Shown to a caller who may
	// invoke the tool (it names a state of the catalog, not a secret).
	ReasonDefinitionChanged = "tool-definition-changed"
)

// errAudit is what a client sees when its request cannot be recorded.
var errAudit = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the audit log is unavailable; the request was not performed"}

// errAuditRan is what a client sees when the call was sent to the
// upstream but its outcome could not be recorded: the truth, so that it is
// not blindly repeated.
var errAuditRan = &jsonrpc.Error{Code: jsonrpc.CodeInternalError,
	Message: "the call was sent to the upstream, but its outcome could not be recorded (the audit log is unavailable): check its effect before repeating it"}

func unknownTool(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
}

// govern is the SDK receiving middleware: it answers tools/list and
// tools/call itself, lets protocol plumbing through, and refuses the rest.
func (g *Gateway) govern(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if !allowedMethods[method] {
			return nil, errMethodUnknown
		}
		switch method {
		case "tools/list", "tools/call", "prompts/list", "prompts/get", "completion/complete",
			"resources/list", "resources/templates/list", "resources/read":
		default:
			return next(ctx, method, req)
		}
		p := principalOf(req)
		if p == nil { // cannot happen behind ServeHTTP; refuse rather than guess
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated"}
		}
		var res mcp.Result
		var err error
		switch method {
		case "tools/list":
			return g.listTools(ctx, p)
		case "prompts/list":
			return g.listPrompts(ctx, p)
		case "resources/list":
			return g.listResources(ctx, p, false)
		case "resources/templates/list":
			return g.listResources(ctx, p, true)
		case "resources/read":
			params := req.(*mcp.ReadResourceRequest).Params
			res, err = g.readResource(ctx, p, params.URI, clientContinuation(req, params.Meta, params.InputResponses, params.RequestState))
		case "prompts/get":
			params := req.(*mcp.GetPromptRequest).Params
			res, err = g.getPrompt(ctx, p, params, clientContinuation(req, params.Meta, params.InputResponses, params.RequestState))
		case "completion/complete":
			res, err = g.complete(ctx, p, req.(*mcp.CompleteRequest).Params)
		default:
			call := req.(*mcp.CallToolRequest)
			relay := &upstream.Relay{Session: call.Session, Ctx: ctx, ProgressToken: call.Params.GetProgressToken(), RequestID: p.RequestID, Modern: isModern(req)}
			tr := toolRequest{name: call.Params.Name, client: clientContinuation(req, call.Params.Meta, call.Params.InputResponses, call.Params.RequestState)}
			tr.args, tr.argErr = arguments(call.Params.Arguments)
			res, err = g.callTool(ctx, p, tr, relay)
		}
		if err == nil && isModern(req) {
			g.answeredBy(res)
			return completeResult(res)
		}
		return res, err
	}
}

func principalOf(req mcp.Request) *authn.Principal {
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return nil
	}
	p, _ := extra.TokenInfo.Extra["principal"].(*authn.Principal)
	return p
}

// visible reports whether p may see a name in a listing: discover grant
// and no kill switch on it or its upstream.
func (g *Gateway) visible(p *authn.Principal) func(name string) bool {
	snap := g.cfg.Catalog.Snapshot()
	return func(name string) bool {
		if !p.Allows(authz.Discover, name) {
			return false
		}
		_, killed := g.blocked(killswitch.Subject{User: p.User, KeyID: p.KeyID, Upstream: snap.UpstreamOf(name), Tool: name})
		return !killed
	}
}

// builtins are Ostiary's own tools, visible to every authenticated caller.
var builtins = []*mcp.Tool{{
	Name:        "discover_tools",
	Description: "Search the tools you may use by words in their name or description. Use it when the tool list is too long to read.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string","description":"words to look for"},"limit":{"type":"integer","minimum":1,"maximum":100}},"additionalProperties":false}`),
	Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
}, {
	Name:        "approval_status",
	Description: "Check your own calls held for approval: one by its id, or your recent ones. Once a request is approved, repeat exactly the same call to run it.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string","description":"an approval id (apr_…)"}},"additionalProperties":false}`),
	Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
}}

// listTools returns exactly the tools p may discover (cacheScope private).
func (g *Gateway) listTools(ctx context.Context, p *authn.Principal) (mcp.Result, error) {
	tools := g.cfg.Catalog.Snapshot().Visible(g.visible(p))
	rec := p.Record(EventToolsList, "")
	rec.Detail = map[string]any{"tools": len(tools)}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	res := &mcp.ListToolsResult{Tools: append(append(make([]*mcp.Tool, 0, len(tools)+len(builtins)), builtins...), tools...)}
	res.CacheScope = "private"
	return res, nil
}

// callTool authorizes, validates, records the decision, executes as p on
// the upstream and records the outcome. Nothing reaches the upstream unless
// the decision record is durable.
func (g *Gateway) callTool(ctx context.Context, p *authn.Principal, tr toolRequest, relay *upstream.Relay) (mcp.Result, error) {
	name, args, argErr := tr.name, tr.args, tr.argErr
	rec := p.Record(EventToolCall, "tool:"+name)
	rec.Detail = map[string]any{"args_sha256": args.digest}
	switch name {
	case "discover_tools":
		return g.discover(ctx, p, rec, args.value, argErr)
	case "approval_status":
		return g.approvalStatus(ctx, p, rec, args.value, argErr)
	}
	e, ok := g.cfg.Catalog.Snapshot().Lookup(name)
	switch {
	case !ok:
		return nil, g.deny(ctx, rec, ReasonUnknownTool, unknownTool(name))
	case !p.Allows(authz.Invoke, name):
		return nil, g.deny(ctx, rec, ReasonNotPermitted, unknownTool(name))
	}
	relay.Gate = g.toolGate(p, name, e) // what its upstream may ask the client during the call
	sub := killswitch.Subject{User: p.User, KeyID: p.KeyID, Upstream: e.Upstream, Tool: name}
	if sw, killed := g.blocked(sub); killed {
		rec.Detail["killswitch"] = sw.ID
		return nil, g.deny(ctx, rec, ReasonKilled, unknownTool(name))
	}
	rec.Detail["upstream"], rec.Detail["version"], rec.Detail["digest"] = e.Upstream, e.Version, e.Digest
	if err := g.definitionChanged(ctx, rec, e); err != nil {
		return nil, err
	}
	if e.SchemaErr != nil {
		return nil, g.deny(ctx, rec, ReasonBadSchema, &jsonrpc.Error{Code: jsonrpc.CodeInternalError,
			Message: fmt.Sprintf("tool %q has an invalid pinned input schema and cannot be called", name)})
	}
	if argErr == nil {
		argErr = e.Schema.Validate(args.value)
	}
	if argErr != nil {
		return nil, g.deny(ctx, rec, ReasonBadArguments, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: fmt.Sprintf("invalid arguments for tool %q: %s", name, clip(argErr.Error()))})
	}
	u, ok := g.cfg.Catalog.Snapshot().Upstream(e.Upstream)
	if !ok {
		return nil, g.deny(ctx, rec, ReasonUnknownTool, unknownTool(name))
	}
	cont, err := g.resume(&rec, p, "tool:"+name, args.digest, tr.client)
	if err != nil {
		return nil, g.deny(ctx, rec, ReasonBadState, err)
	}
	var pc *parkedCall // the call this request continues, still under way
	if cont.Parked != "" {
		if pc, err = g.parkedFor(cont); err != nil {
			return nil, g.deny(ctx, rec, ReasonBadState, err)
		}
		rec.Detail["parked"] = true
	}
	// A new call counts against the user's calls in flight until it ends:
	// here for a legacy call, in its goroutine for a parked one (handed).
	handed := false
	if pc == nil {
		if !g.userCalls.acquire(p.User) {
			return nil, g.deny(ctx, rec, ReasonCallsCap, errCallsCap(g.cfg.Caps.Calls))
		}
		defer func() {
			if !handed {
				g.userCalls.release(p.User)
			}
		}()
	}
	d := g.decide(p, e, args.value)
	noteDecision(&rec, d)
	switch {
	case d.Effect == policy.Deny:
		if pc != nil {
			pc.cancel(errors.New("denied by policy when continued"))
		}
		return g.policyDenied(ctx, p, rec, d)
	case d.Effect == policy.Approve && (cont.Approval != "" || pc != nil):
		rec.Detail["approval"] = cont.Approval // the call under way (approved if it had to be), continued
	case d.Effect == policy.Approve:
		id, proceed, res, err := g.held(ctx, p, rec, d, e, args, relay)
		if !proceed {
			return res, err
		}
		rec.Outcome, rec.Reason = audit.Success, ""
		rec.Detail["approval"] = id
		cont.Approval = id
		if sw, killed := g.blocked(sub); killed { // engaged while the call waited
			rec.Detail["killswitch"] = sw.ID
			return nil, g.deny(ctx, rec, ReasonKilled, unknownTool(name))
		}
	}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	if pc != nil {
		if q, err := pc.attach(tr.client.InputResponses); err != nil || q != nil {
			if err != nil {
				return nil, err
			}
			return g.asking(pc, q) // not answered: asked again
		}
		return g.await(ctx, pc)
	}
	t := &toolRun{p: p, name: name, e: e, u: u, sub: sub, relay: relay, tr: tr, args: args, cont: cont}
	if !relay.Modern {
		return g.run(ctx, t)
	}
	// A 2026-07-28 client: the call runs on its own, so that it can outlive
	// this request if the upstream asks the client something (bridge.go).
	pc = g.park(p, "tool:"+name, args.digest, cont.Approval, tr.client.Capabilities)
	relay.Ask, relay.Admit = pc.ask, pc.admit
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(g.life, func() { cancel(errShutdown) })
	pc.cancel, pc.ctx, pc.attached = cancel, callCtx, true
	g.detached.Add(1)
	handed = true
	go func() {
		defer g.detached.Done()
		defer g.userCalls.release(p.User)
		defer stop()
		res, err := g.run(callCtx, t)
		cancel(nil)
		g.ended(pc, res, err)
	}()
	return g.await(ctx, pc)
}

// toolRun is a call on its way upstream, with what recording it needs.
type toolRun struct {
	p     *authn.Principal
	name  string
	e     *catalog.Entry
	u     spec.Upstream
	sub   killswitch.Subject
	relay *upstream.Relay
	tr    toolRequest
	args  callArgs
	cont  continuation
}

// run calls the upstream (bounded by ctx, the timeouts and kill switches)
// and records the outcome before returning what the client gets.
func (g *Gateway) run(ctx context.Context, t *toolRun) (mcp.Result, error) {
	p, name, e, u, relay, tr, args, cont := t.p, t.name, t.e, t.u, t.relay, t.tr, t.args, t.cont
	start := g.cfg.Now()
	callCtx, cancel := context.WithTimeout(ctx, callTimeout(g.cfg.CallTimeout, u.CallTimeout, e.CallTimeout))
	defer cancel()
	callCtx, cut := context.WithCancelCause(callCtx)
	defer g.calls.add(t.sub, cut)()
	tc := upstream.ToolCall{Name: e.UpstreamTool, Arguments: args.raw, ParamHeaders: e.ParamHeaders, Continuation: forward(tr.client, cont)}
	tc.Args, _ = args.value.(map[string]any)
	res, attempts, err := g.call(callCtx, p, u, e, tc, relay)
	out := p.Record(EventToolResult, "tool:"+name)
	out.Detail = map[string]any{"upstream": e.Upstream, "latency_us": g.cfg.Now().Sub(start).Microseconds()}
	if attempts > 1 {
		out.Detail["attempts"] = attempts
	}
	var rpcErr *jsonrpc.Error
	switch {
	case context.Cause(callCtx) == errKilled:
		out.Outcome, out.Reason = audit.Failed, ReasonKilled
		res, err = nil, errKilled
	case err == nil && res.InputRequests != nil:
		g.history.Touch(p.User, e.PolicyTool().Classes(), g.cfg.Now())
		if res.RequestState, err = g.ask(ctx, &out, p, "tool:"+name, args.digest, tr.client, res.InputRequests, res.RequestState, cont, relay.Redact,
			u.Name, relay.Gate); err != nil {
			res = nil
		}
	case err == nil:
		out.Detail["is_error"] = res.IsError
		res.RequestState = "" // only Ostiary's sealed states reach the client
		g.history.Touch(p.User, e.PolicyTool().Classes(), g.cfg.Now())
	case upstream.Answered(err) && errors.As(err, &rpcErr):
		out.Outcome, out.Reason = audit.Failed, ReasonRefusedUpstream
		out.Detail["error_code"] = rpcErr.Code
	case upstream.Suspended(err):
		// The upstream's circuit is open: refused at once, nothing was sent.
		out.Outcome, out.Reason = audit.Failed, ReasonCircuitOpen
		res, err = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s; nothing was sent (request %s)", err.Error(), p.RequestID)}}}, nil
	case upstream.Busy(err):
		// No slot was free: refused at once, nothing was sent.
		out.Outcome, out.Reason = audit.Failed, ReasonUpstreamBusy
		res, err = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s (request %s)", err.Error(), p.RequestID)}}}, nil
	case isRefusedCommand(err):
		// The operator's allow-list no longer holds the upstream's program:
		// nothing was started (the pool recorded the refusal).
		out.Outcome, out.Reason = audit.Denied, upstream.ReasonStdioRefused
		err = nil
		res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{
			Text: fmt.Sprintf("upstream %s cannot be started: its command is not allowed on this server (request %s)", u.Name, p.RequestID)}}}
	default:
		var text string
		out.Outcome, out.Reason, text = audit.Failed, ReasonUpstream, fmt.Sprintf("upstream %s did not answer the call", u.Name)
		switch {
		case g.Stopping() || errors.Is(context.Cause(callCtx), errShutdown):
			out.Reason, text = ReasonGatewayStopping, "the gateway is stopping; the call was cut"
		case ctx.Err() != nil:
			out.Reason, text = ReasonClientCancelled, "the call was cancelled"
		case errors.Is(context.Cause(callCtx), context.DeadlineExceeded):
			out.Reason, text = ReasonTimeout, fmt.Sprintf("upstream %s did not answer within the call's time limit", u.Name)
		}
		g.cfg.Logger.Warn("upstream call failed", "request_id", p.RequestID, "principal", p.User, "tool", name, "upstream", u.Name, "reason", out.Reason,
			"err", string(relay.Redact([]byte(err.Error())))) // an upstream may echo what it was sent
		err = nil
		res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s (request %s)", text, p.RequestID)}}}
	}
	if err != nil {
		if errors.As(err, &rpcErr) {
			err = &jsonrpc.Error{Code: rpcErr.Code, Message: string(relay.Redact([]byte(rpcErr.Message))), Data: redactData(relay, rpcErr.Data)}
		}
		res = nil
	} else {
		res, err = upstream.RedactValue(relay, res) // an upstream may echo what it was sent
	}
	out.Detail["response_bytes"] = responseBytes(res, err)
	if _, werr := g.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: out}); werr != nil {
		g.cfg.Logger.Error("cannot record a call's outcome", "request_id", p.RequestID, "tool", name, "err", werr)
		return nil, errAuditRan
	}
	if werr := g.echoed(ctx, p, name, u.Name, relay); werr != nil {
		return nil, errAuditRan
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Retries: a tool whose pinned definition says it is read-only or
// idempotent is called again when the upstream failed to answer (never
// when it answered, even with an error), up to maxAttempts in all, with
// exponential backoff and jitter, within the call's deadline, and not
// while the upstream's circuit is open.
const (
	maxAttempts  = 3
	retryBackoff = 100 * time.Millisecond
)

// responseBytes is the size of what the client gets for a call: the
// result's JSON, or the error's.
func responseBytes(res mcp.Result, err error) int {
	var b []byte
	if err != nil {
		b, _ = json.Marshal(err)
	} else if res != nil && !reflect.ValueOf(res).IsNil() {
		b, _ = json.Marshal(res)
	}
	return len(b)
}

// callTimeout is the tightest of the server's bound and the upstream's and
// tool's timeouts where set: the server's is the overall maximum, even
// while progress keeps arriving.
func callTimeout(server time.Duration, set ...time.Duration) time.Duration {
	d := server
	for _, s := range set {
		if s > 0 && s < d {
			d = s
		}
	}
	return d
}

func isRefusedCommand(err error) bool {
	_, refused := spec.RefusedCommand(err)
	return refused
}

// retryable reports whether the pinned definition allows repeating a call.
func retryable(t *mcp.Tool) bool {
	return t != nil && t.Annotations != nil && (t.Annotations.ReadOnlyHint || t.Annotations.IdempotentHint)
}

// call runs the tool on its upstream as p, retrying as above; it returns
// how many attempts were made.
func (g *Gateway) call(ctx context.Context, p *authn.Principal, u spec.Upstream, e *catalog.Entry, tc upstream.ToolCall,
	relay *upstream.Relay) (*mcp.CallToolResult, int, error) {
	for attempt := 1; ; attempt++ {
		res, err := g.cfg.Upstreams.Call(ctx, upstream.CallerOf(p), u, tc, relay)
		if err == nil || attempt == maxAttempts || !retryable(e.Tool) || upstream.Answered(err) || upstream.Suspended(err) || upstream.Refused(err) || upstream.Busy(err) || ctx.Err() != nil {
			return res, attempt, err
		}
		wait := retryBackoff << (2 * (attempt - 1))
		wait += time.Duration(mathrand.Int64N(int64(wait) / 2))
		g.cfg.Logger.Info("retrying an idempotent call", "request_id", p.RequestID, "tool", e.Name, "attempt", attempt+1, "after", wait)
		select {
		case <-ctx.Done():
			return res, attempt, err
		case <-time.After(wait):
		}
	}
}

// isModern reports whether a request carries 2026-07-28 per-request _meta.
func isModern(req mcp.Request) bool {
	m, ok := req.GetParams().(interface{ GetMeta() map[string]any })
	if !ok {
		return false
	}
	_, modern := m.GetMeta()[metaProtocolVersion]
	return modern
}

// answeredBy names Ostiary in a 2026-07-28 result's _meta as the server
// that answered: the client talks to Ostiary, and an upstream's own name
// (which the SDK would otherwise leave in place) is not its business.
func (g *Gateway) answeredBy(res mcp.Result) {
	if res == nil || reflect.ValueOf(res).IsNil() {
		return
	}
	m := res.GetMeta()
	if m == nil {
		m = map[string]any{}
	}
	m[mcp.MetaKeyServerInfo] = g.impl
	res.SetMeta(m)
}

// completeResult marks an upstream's result for a 2026-07-28 client as
// complete (resultType is required there) unless the upstream set a result
// type itself. The SDK sets it only for results of handlers registered with
// it, and some result types only through decoding, so the result is
// re-encoded into a value of its own type.
func completeResult(res mcp.Result) (mcp.Result, error) {
	if res == nil || reflect.ValueOf(res).IsNil() {
		return res, nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if hasResultType(b) {
		return res, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["resultType"] = json.RawMessage(`"complete"`)
	if b, err = json.Marshal(m); err != nil {
		return nil, err
	}
	out := reflect.New(reflect.TypeOf(res).Elem()).Interface().(mcp.Result)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// definitionChanged refuses (and records) a call of a tool whose upstream
// presents a definition other than the pinned one, not yet reviewed; on an
// upstream that keeps such tools pinned, it notes on rec that the call runs
// under the pinned definition.
func (g *Gateway) definitionChanged(ctx context.Context, rec audit.Record, e *catalog.Entry) error {
	switch {
	case !e.Changed:
		return nil
	case e.KeepPinned:
		rec.Detail["definition_changed"] = spec.OnChangeKeepPinned
		return nil
	}
	return g.deny(ctx, rec, ReasonDefinitionChanged, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
		Message: fmt.Sprintf("tool %q is refused (%s): its upstream now presents a definition other than the pinned one, and calls wait until an administrator reviews it",
			e.Name, ReasonDefinitionChanged)})
}

// write puts rec on record. If the audit log refuses, the cause goes to
// the operational log with the request id, and the client gets errAudit
// (its cause is not the client's business).
func (g *Gateway) write(ctx context.Context, rec audit.Record) error {
	if _, err := g.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		g.cfg.Logger.Error("audit unavailable", "request_id", rec.RequestID, "event", rec.Event, "target", rec.Target, "err", err)
		return errAudit
	}
	return nil
}

// deny records a refused call and returns what the client sees.
func (g *Gateway) deny(ctx context.Context, rec audit.Record, reason string, clientErr error) error {
	rec.Outcome, rec.Reason = audit.Denied, reason
	if reason == ReasonBadArguments || reason == ReasonBadSchema || reason == ReasonHeaderMismatch {
		rec.Outcome = audit.Failed
	}
	if err := g.write(ctx, rec); err != nil {
		return err
	}
	return clientErr
}

// toolRequest is a tools/call as the front door received it.
type toolRequest struct {
	name   string
	args   callArgs
	argErr error
	client upstream.Continuation // as the client sent it: the requestState is Ostiary's
}

// rawJSON encodes v (nil stays nil).
func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// arguments parses call arguments strictly and returns them with their
// canonical (RFC 8785) form and its SHA-256, so that the audit log can
// prove which arguments a call carried without holding them, and an
// approval can bind them. The canonical bytes are also what the upstream
// gets: what is hashed, validated, decided on, shown to an approver and
// forwarded is one text. Arguments that would not be that one text are
// refused: member names equal under case folding ({"ms":1,"MS":3000}),
// and numbers the canonical form cannot carry exactly (jcs.Exact).
type callArgs struct {
	value     any // numbers rewritten to their canonical text
	raw       json.RawMessage
	canonical []byte
	digest    string
}

func arguments(raw json.RawMessage) (callArgs, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	v, err := strictjson.Parse(raw)
	if err != nil {
		return callArgs{}, err
	}
	return parsedArguments(v)
}

// parsedArguments is arguments for a value already parsed strictly (and
// owned by the caller: its numbers are rewritten in place).
func parsedArguments(v any) (callArgs, error) {
	if _, ok := v.(map[string]any); !ok {
		return callArgs{}, errors.New("arguments must be an object")
	}
	if c := strictjson.FindCaseCollision(v, "$"); c != nil {
		return callArgs{}, c
	}
	if err := jcs.Exact(v, "$"); err != nil {
		return callArgs{}, err
	}
	c, err := jcs.Append(nil, v)
	if err != nil {
		return callArgs{}, err
	}
	sum := sha256.Sum256(c)
	return callArgs{v, c, c, hex.EncodeToString(sum[:])}, nil
}

// discover serves the built-in discover_tools: a search over only what the
// caller may discover.
func (g *Gateway) discover(ctx context.Context, p *authn.Principal, rec audit.Record, args any, argErr error) (mcp.Result, error) {
	var in struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
	}
	if argErr == nil {
		b, _ := json.Marshal(args)
		argErr = strictjson.Decode(b, &in)
	}
	if argErr != nil || in.Limit < 0 || in.Limit > 100 {
		return nil, g.deny(ctx, rec, ReasonBadArguments, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: "invalid arguments for tool \"discover_tools\": want {\"query\": string, \"limit\": 1-100}"})
	}
	if in.Limit == 0 {
		in.Limit = 20
	}
	found := g.cfg.Catalog.Snapshot().Search(in.Query, g.visible(p), in.Limit)
	type hit struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Invocable   bool   `json:"invocable"`
	}
	hits := make([]hit, len(found))
	for i, e := range found {
		hits[i] = hit{e.Name, e.Tool.Description, p.Allows(authz.Invoke, e.Name)}
	}
	rec.Detail["decision"], rec.Detail["results"] = "allow", len(hits)
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"tools": hits})
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(body)}},
		StructuredContent: map[string]any{"tools": hits}}, nil
}

// redactData is an upstream error's data with injected secrets removed.
func redactData(relay *upstream.Relay, data json.RawMessage) json.RawMessage {
	if len(data) == 0 {
		return nil
	}
	return relay.RedactJSON(data)
}
