package govern

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/tracing"
	"github.com/ostiary/ostiary/internal/upstream"
)

// toolCall is a tools/call on its way through the stages: what the front
// door handed over, and what each stage adds.
type toolCall struct {
	p      *authn.Principal
	req    ToolRequest
	relay  *upstream.Relay
	rec    audit.Record    // the decision record, filled in stage by stage
	seq    uint64          // the decision record's seq, once on record
	t      target          // resolve
	cont   continuation    // continue: what a requestState brought back
	parked *parkedCall     // continue: the call under way this request continues
	d      policy.Decision // decide
	enc    []byte          // outcome: the JSON of the result it returned, if it made one (the goroutine running the call writes it)
	reply  []byte          // enc, once the request has the result it is of (the request's goroutine writes it)
}

// CallTool governs p's tools/call: the stages of the package doc, top to
// bottom. Nothing reaches the upstream unless the decision record is
// durable, and nothing leaves for the client before the outcome is.
func (pl *Pipeline) CallTool(ctx context.Context, p *authn.Principal, req ToolRequest, relay *upstream.Relay) (mcp.Result, error) {
	res, _, err := pl.CallToolJSON(ctx, p, req, relay)
	return res, err
}

// CallToolJSON is CallTool that also returns the JSON encoding of the
// result the client gets, when the outcome stage made it (it encodes the
// result once, to redact it): the front door sends those bytes instead of
// encoding the result again. It is nil for results made otherwise (a
// refusal, a question put to the client, Ostiary's own tools).
func (pl *Pipeline) CallToolJSON(ctx context.Context, p *authn.Principal, req ToolRequest, relay *upstream.Relay) (mcp.Result, json.RawMessage, error) {
	c := &toolCall{p: p, req: req, relay: relay}
	res, err := pl.callTool(ctx, c)
	if err != nil || c.reply == nil {
		return res, nil, err
	}
	return res, c.reply, nil
}

func (pl *Pipeline) callTool(ctx context.Context, c *toolCall) (mcp.Result, error) {
	p, req, relay := c.p, c.req, c.relay
	c.rec = p.Record(EventToolCall, "tool:"+req.Name)
	c.rec.Detail = map[string]any{"args_sha256": req.Args.digest}
	if serve, ok := builtin[req.Name]; ok { // Ostiary's own tools: no upstream
		return serve(pl, ctx, c)
	}
	snap := req.Snapshot
	if snap == nil {
		snap = pl.cfg.Catalog.Snapshot()
	}
	c.t = resolveTool(snap, req.Name)
	if err := pl.admit(ctx, p, c.rec, c.t); err != nil { // authorize, kill switch
		return nil, err
	}
	relay.Gate = pl.toolGate(p, c.t.tool) // what its upstream may ask the client during the call
	if err := pl.validate(ctx, c); err != nil {
		return nil, err
	}
	if err := pl.continued(ctx, c); err != nil {
		return nil, err
	}
	release, err := pl.countCall(ctx, c)
	if err != nil {
		return nil, err
	}
	handed := false // release is dispatch's once it is called
	defer func() {
		if !handed {
			release()
		}
	}()
	c.d = pl.decideTraced(ctx, p, c.t.tool, req.Args.value)
	noteDecision(&c.rec, c.d)
	noteEgress(&c.rec, c.t.tool, req.Args.value)
	if stop, res, err := pl.approvalGate(ctx, c); stop {
		return res, err
	}
	if c.seq, err = pl.decision(ctx, c.rec); err != nil { // the decision, on record
		return nil, err
	}
	handed = true
	return pl.dispatch(ctx, c, release) // and the outcome, on record (outcome.go)
}

// continued is the stage that opens the requestState a 2026-07-28 request
// brings back (continue.go), and finds the call under way it continues,
// if any (bridge.go).
func (pl *Pipeline) continued(ctx context.Context, c *toolCall) error {
	var err error
	if c.cont, err = pl.resume(&c.rec, c.p, c.t.ref, c.req.Args.digest, c.req.Client); err != nil {
		return pl.Deny(ctx, c.rec, ReasonBadState, err)
	}
	if c.cont.Parked != "" {
		if c.parked, err = pl.parkedFor(c.cont); err != nil {
			return pl.Deny(ctx, c.rec, ReasonBadState, err)
		}
		c.rec.Detail["parked"] = true
	}
	return nil
}

// countCall counts a new call against the user's calls in flight until
// it ends (release); a request continuing a call under way is that call.
func (pl *Pipeline) countCall(ctx context.Context, c *toolCall) (release func(), err error) {
	if c.parked != nil {
		return func() {}, nil
	}
	if !pl.userCalls.Acquire(c.p.User) {
		return nil, pl.Deny(ctx, c.rec, ReasonCallsCap, errCallsCap(pl.cfg.CallsPerUser))
	}
	return func() { pl.userCalls.Release(c.p.User) }, nil
}

// errCallsCap is a tool call refused at the user's cap of calls in flight.
func errCallsCap(limit int) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: fmt.Sprintf("too many calls in flight for this user (at most %d); retry when one ends", limit)}
}

// approvalGate acts on the decision: a denied call is answered (stop), a
// call the policy wants approved goes on only once approved (approve.go),
// the rest go on.
func (pl *Pipeline) approvalGate(ctx context.Context, c *toolCall) (stop bool, res mcp.Result, err error) {
	switch {
	case c.d.Effect == policy.Deny:
		if c.parked != nil {
			c.parked.cancel(errors.New("denied by policy when continued"))
		}
		res, err = pl.policyDenied(ctx, c.p, c.rec, c.d)
		return true, res, err
	case c.d.Effect == policy.Approve && (c.cont.Approval != "" || c.parked != nil):
		c.rec.Detail["approval"] = c.cont.Approval // the call under way (approved if it had to be), continued
	case c.d.Effect == policy.Approve:
		hctx, span := pl.cfg.Tracer.Start(ctx, tracing.SpanApproval)
		id, proceed, res, err := pl.held(hctx, c.p, c.rec, c.d, c.t.tool, c.req.Args, c.relay)
		if !proceed {
			span.Fail("not-approved")
			span.End()
			return true, res, err
		}
		span.End()
		c.rec.Outcome, c.rec.Reason = audit.Success, ""
		c.rec.Detail["approval"] = id
		c.cont.Approval = id
		if err := pl.unkilled(ctx, c.p, c.rec, c.t); err != nil { // engaged while the call waited
			return true, nil, err
		}
	}
	return false, nil, nil
}

// GetPrompt governs p's prompts/get: resolve, authorize, kill switch,
// continue, record, dispatch, outcome.
func (pl *Pipeline) GetPrompt(ctx context.Context, p *authn.Principal, params *mcp.GetPromptParams, client upstream.Continuation) (mcp.Result, error) {
	rec := p.Record(EventPromptGet, "prompt:"+params.Name)
	rec.Detail = map[string]any{"arguments": len(params.Arguments)}
	t := resolvePrompt(pl.cfg.Catalog.Snapshot(), params.Name)
	if err := pl.admit(ctx, p, rec, t); err != nil {
		return nil, err
	}
	rec.Detail["upstream"], rec.Detail["decision"] = t.upstream.Name, "allow"
	// The digest binds a continuation to these arguments.
	args := make(map[string]any, len(params.Arguments))
	for k, v := range params.Arguments {
		args[k] = v
	}
	digest := ""
	if a, err := CanonicalArgs(args); err == nil {
		digest = a.digest
	}
	cont, err := pl.resume(&rec, p, t.ref, digest, client)
	if err != nil {
		return nil, pl.Deny(ctx, rec, ReasonBadState, err)
	}
	seq, err := pl.decision(ctx, rec)
	if err != nil {
		return nil, err
	}
	start := pl.cfg.Now()
	upCtx, done, stopped := pl.untilStop(ctx)
	defer done()
	res, err := &mcp.GetPromptResult{}, errShutdown
	if !stopped {
		res, err = pl.cfg.Upstreams.GetPrompt(upCtx, upstream.CallerOf(p), t.upstream, upstream.PromptGet{Name: t.prompt.UpstreamName, Arguments: params.Arguments,
			Continuation: forward(client, cont)})
	}
	var reqs mcp.InputRequestMap
	var state *string
	if err == nil {
		reqs, state = res.InputRequests, &res.RequestState
	}
	if err := pl.relayOutcome(ctx, p, EventPromptResult, t, pl.otherGate(p, t.ref, t.upstream.Name), digest, client, cont, seq, start, err, reqs, state); err != nil {
		return nil, err
	}
	return res, nil
}

// ReadResource governs p's resources/read: resolve, authorize, kill
// switch, continue, record, dispatch, outcome. A read has no arguments:
// the URI is the target.
func (pl *Pipeline) ReadResource(ctx context.Context, p *authn.Principal, uri string, client upstream.Continuation) (mcp.Result, error) {
	rec := p.Record(EventResourceRead, "resource:"+uri)
	t := resolveResource(pl.cfg.Catalog.Snapshot(), uri, false)
	if err := pl.admit(ctx, p, rec, t); err != nil {
		return nil, err
	}
	rec.Detail = map[string]any{"upstream": t.upstream.Name, "name": t.name, "decision": "allow"}
	cont, err := pl.resume(&rec, p, t.ref, "", client)
	if err != nil {
		return nil, pl.Deny(ctx, rec, ReasonBadState, err)
	}
	seq, err := pl.decision(ctx, rec)
	if err != nil {
		return nil, err
	}
	start := pl.cfg.Now()
	upCtx, done, stopped := pl.untilStop(ctx)
	defer done()
	res, err := &mcp.ReadResourceResult{}, errShutdown
	if !stopped {
		res, err = pl.cfg.Upstreams.ReadResource(upCtx, upstream.CallerOf(p), t.upstream, uri, forward(client, cont))
	}
	var reqs mcp.InputRequestMap
	var state *string
	if err == nil {
		reqs, state = res.InputRequests, &res.RequestState
	}
	if err := pl.relayOutcome(ctx, p, EventResourceResult, t, pl.otherGate(p, "resource:"+clip(uri), t.upstream.Name), "", client, cont, seq, start, err, reqs, state); err != nil {
		return nil, err
	}
	// Who may read it depends on grants: no shared cache may serve it to
	// someone else, whatever the upstream said.
	res.CacheScope = "private"
	return res, nil
}

// Complete governs p's completion/complete of a prompt's or a resource
// template's arguments: resolve, authorize, kill switch, record,
// dispatch. Only the completion itself goes upstream: never the client's
// _meta.
func (pl *Pipeline) Complete(ctx context.Context, p *authn.Principal, params *mcp.CompleteParams) (mcp.Result, error) {
	rec := p.Record(EventCompletion, "")
	snap := pl.cfg.Catalog.Snapshot()
	var t target
	fwd := mcp.CompleteParams{Argument: params.Argument, Context: params.Context}
	switch {
	case params.Ref != nil && params.Ref.Type == "ref/resource":
		t = resolveResource(snap, params.Ref.URI, true)
		fwd.Ref = &mcp.CompleteReference{Type: "ref/resource", URI: params.Ref.URI}
	case params.Ref != nil && params.Ref.Type == "ref/prompt":
		t = resolvePrompt(snap, params.Ref.Name)
		if t.prompt != nil {
			fwd.Ref = &mcp.CompleteReference{Type: "ref/prompt", Name: t.prompt.UpstreamName}
		}
	default:
		return nil, pl.Deny(ctx, rec, ReasonUnknownTool, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: "completion needs a ref/prompt or ref/resource reference"})
	}
	rec.Target = t.ref
	if err := pl.admit(ctx, p, rec, t); err != nil {
		return nil, err
	}
	rec.Detail = map[string]any{"upstream": t.upstream.Name, "argument": params.Argument.Name}
	if err := pl.write(ctx, rec); err != nil {
		return nil, err
	}
	return pl.cfg.Upstreams.Complete(ctx, upstream.CallerOf(p), t.upstream, &fwd)
}
