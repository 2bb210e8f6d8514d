package gateway

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Audit event types of resources.
const (
	EventResourcesList  = "resources-list"
	EventResourceRead   = "resource-read"   // the decision, before forwarding
	EventResourceResult = "resource-result" // the outcome
)

// Resources are identified by URI and governed by the tools' grants under
// their upstream's namespace and display name: discover lists, invoke reads. A hidden
// resource answers exactly like a missing one (the SDK's not-found error).

func (g *Gateway) listResources(ctx context.Context, p *authn.Principal, templates bool) (mcp.Result, error) {
	rs, ts := g.cfg.Catalog.Snapshot().VisibleResources(g.visible(p))
	rec := p.Record(EventResourcesList, "")
	rec.Detail = map[string]any{"resources": len(rs), "templates": len(ts), "list_templates": templates}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	if templates {
		res := &mcp.ListResourceTemplatesResult{ResourceTemplates: ts}
		res.CacheScope = "private"
		return res, nil
	}
	res := &mcp.ListResourcesResult{Resources: rs}
	res.CacheScope = "private"
	return res, nil
}

// resourceTarget resolves a URI p may read, recording a refusal.
func (g *Gateway) resourceTarget(ctx context.Context, p *authn.Principal, rec audit.Record, e *catalog.ResourceEntry, found bool, notFound error) (spec.Upstream, error) {
	switch {
	case !found:
		return spec.Upstream{}, g.deny(ctx, rec, ReasonUnknownTool, notFound)
	case !p.Allows(authz.Invoke, e.Name):
		return spec.Upstream{}, g.deny(ctx, rec, ReasonNotPermitted, notFound)
	}
	if _, killed := g.blocked(killswitch.Subject{User: p.User, KeyID: p.KeyID, Upstream: e.Upstream, Tool: e.Name}); killed {
		return spec.Upstream{}, g.deny(ctx, rec, ReasonKilled, notFound)
	}
	u, ok := g.cfg.Catalog.Snapshot().Upstream(e.Upstream)
	if !ok {
		return spec.Upstream{}, g.deny(ctx, rec, ReasonUnknownTool, notFound)
	}
	return u, nil
}

func (g *Gateway) readResource(ctx context.Context, p *authn.Principal, uri string, client upstream.Continuation) (mcp.Result, error) {
	rec := p.Record(EventResourceRead, "resource:"+uri)
	e, found := g.cfg.Catalog.Snapshot().ResolveURI(uri)
	u, err := g.resourceTarget(ctx, p, rec, e, found, mcp.ResourceNotFoundError(uri))
	if err != nil {
		return nil, err
	}
	rec.Detail = map[string]any{"upstream": u.Name, "name": e.Name, "decision": "allow"}
	// A read has no arguments: the URI is the target.
	cont, err := g.resume(&rec, p, "resource:"+uri, "", client)
	if err != nil {
		return nil, g.deny(ctx, rec, ReasonBadState, err)
	}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	start := g.cfg.Now()
	res, err := g.cfg.Upstreams.ReadResource(ctx, upstream.CallerOf(p), u, uri, forward(client, cont))
	out := p.Record(EventResourceResult, "resource:"+uri)
	out.Detail = map[string]any{"upstream": u.Name, "latency_us": g.cfg.Now().Sub(start).Microseconds()}
	switch {
	case err != nil:
		out.Outcome, out.Reason = audit.Failed, ReasonUpstream
	case res.InputRequests != nil:
		if res.RequestState, err = g.ask(ctx, &out, p, "resource:"+uri, "", client, res.InputRequests, res.RequestState, cont, nil,
			u.Name, g.otherGate(p, "resource:"+clip(uri), u.Name)); err != nil { // redacted by the pool
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
	// Who may read it depends on grants: no shared cache may serve it to
	// someone else, whatever the upstream said.
	res.CacheScope = "private"
	return res, nil
}

// completeTemplate forwards completion of a resource template's variables.
func (g *Gateway) completeTemplate(ctx context.Context, p *authn.Principal, rec audit.Record, params *mcp.CompleteParams) (mcp.Result, error) {
	rec.Target = "resource:" + params.Ref.URI
	e, found := g.cfg.Catalog.Snapshot().Template(params.Ref.URI)
	u, err := g.resourceTarget(ctx, p, rec, e, found, mcp.ResourceNotFoundError(params.Ref.URI))
	if err != nil {
		return nil, err
	}
	rec.Detail = map[string]any{"upstream": u.Name, "argument": params.Argument.Name}
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	fwd := mcp.CompleteParams{Argument: params.Argument, Context: params.Context, Ref: &mcp.CompleteReference{Type: "ref/resource", URI: params.Ref.URI}}
	return g.cfg.Upstreams.Complete(ctx, upstream.CallerOf(p), u, &fwd)
}
