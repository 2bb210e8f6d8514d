package gateway

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Audit event types of prompts and completion.
const (
	EventPromptsList  = "prompts-list"
	EventPromptGet    = "prompt-get"    // the decision, before forwarding
	EventPromptResult = "prompt-result" // the outcome
	EventCompletion   = "completion"
)

// Prompts share the tools' grants: discover lists a prompt, invoke gets it
// (and completes its arguments). A hidden prompt looks like a missing one.
func unknownPrompt(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", name)}
}

func (g *Gateway) listPrompts(ctx context.Context, p *authn.Principal) (mcp.Result, error) {
	prompts := g.cfg.Catalog.Snapshot().VisiblePrompts(g.visible(p))
	rec := p.Record(EventPromptsList, "")
	rec.Detail = map[string]any{"prompts": len(prompts)}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	res := &mcp.ListPromptsResult{Prompts: prompts}
	res.CacheScope = "private"
	return res, nil
}

// promptTarget resolves a prompt p may invoke, recording a refusal.
func (g *Gateway) promptTarget(ctx context.Context, p *authn.Principal, rec audit.Record, name string) (*catalog.PromptEntry, spec.Upstream, error) {
	snap := g.cfg.Catalog.Snapshot()
	e, ok := snap.Prompt(name)
	switch {
	case !ok:
		return nil, spec.Upstream{}, g.deny(ctx, rec, ReasonUnknownTool, unknownPrompt(name))
	case !p.Allows(authz.Invoke, name):
		return nil, spec.Upstream{}, g.deny(ctx, rec, ReasonNotPermitted, unknownPrompt(name))
	}
	if _, killed := g.blocked(killswitch.Subject{User: p.User, KeyID: p.KeyID, Upstream: e.Upstream, Tool: name}); killed {
		return nil, spec.Upstream{}, g.deny(ctx, rec, ReasonKilled, unknownPrompt(name))
	}
	u, ok := snap.Upstream(e.Upstream)
	if !ok {
		return nil, spec.Upstream{}, g.deny(ctx, rec, ReasonUnknownTool, unknownPrompt(name))
	}
	return e, u, nil
}

func (g *Gateway) getPrompt(ctx context.Context, p *authn.Principal, params *mcp.GetPromptParams, client upstream.Continuation) (mcp.Result, error) {
	rec := p.Record(EventPromptGet, "prompt:"+params.Name)
	rec.Detail = map[string]any{"arguments": len(params.Arguments)}
	e, u, err := g.promptTarget(ctx, p, rec, params.Name)
	if err != nil {
		return nil, err
	}
	rec.Detail["upstream"], rec.Detail["decision"] = u.Name, "allow"
	// The digest binds a continuation to these arguments.
	args := make(map[string]any, len(params.Arguments))
	for k, v := range params.Arguments {
		args[k] = v
	}
	digest := ""
	if a, err := parsedArguments(args); err == nil {
		digest = a.digest
	}
	cont, err := g.resume(&rec, p, "prompt:"+params.Name, digest, client)
	if err != nil {
		return nil, g.deny(ctx, rec, ReasonBadState, err)
	}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	start := g.cfg.Now()
	res, err := g.cfg.Upstreams.GetPrompt(ctx, upstream.CallerOf(p), u, upstream.PromptGet{Name: e.UpstreamName, Arguments: params.Arguments,
		Continuation: forward(client, cont)})
	out := p.Record(EventPromptResult, "prompt:"+params.Name)
	out.Detail = map[string]any{"upstream": u.Name, "latency_us": g.cfg.Now().Sub(start).Microseconds()}
	switch {
	case err != nil:
		out.Outcome, out.Reason = audit.Failed, ReasonUpstream
	case res.InputRequests != nil:
		if res.RequestState, err = g.ask(ctx, &out, p, "prompt:"+params.Name, digest, client, res.InputRequests, res.RequestState, cont, nil,
			u.Name, g.otherGate(p, "prompt:"+params.Name, u.Name)); err != nil { // redacted by the pool
			res = nil
		}
	default:
		res.RequestState = "" // only Ostiary's sealed states reach the client
	}
	if werr := g.write(context.WithoutCancel(ctx), out); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// complete forwards argument completion for a prompt or resource template
// the caller may use.
func (g *Gateway) complete(ctx context.Context, p *authn.Principal, params *mcp.CompleteParams) (mcp.Result, error) {
	rec := p.Record(EventCompletion, "")
	if params.Ref != nil && params.Ref.Type == "ref/resource" {
		return g.completeTemplate(ctx, p, rec, params)
	}
	if params.Ref == nil || params.Ref.Type != "ref/prompt" {
		return nil, g.deny(ctx, rec, ReasonUnknownTool, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: "completion needs a ref/prompt or ref/resource reference"})
	}
	rec.Target = "prompt:" + params.Ref.Name
	e, u, err := g.promptTarget(ctx, p, rec, params.Ref.Name)
	if err != nil {
		return nil, err
	}
	rec.Detail = map[string]any{"upstream": u.Name, "argument": params.Argument.Name}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	// Only the completion itself goes upstream: never the client's _meta.
	fwd := mcp.CompleteParams{Argument: params.Argument, Context: params.Context,
		Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: e.UpstreamName}}
	return g.cfg.Upstreams.Complete(ctx, upstream.CallerOf(p), u, &fwd)
}
