package govern

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/authn"
)

// ListTools returns exactly the tools p may discover (cacheScope private).
func (pl *Pipeline) ListTools(ctx context.Context, p *authn.Principal) (mcp.Result, error) {
	snap := pl.cfg.Catalog.Snapshot()
	tools := snap.Visible(pl.visible(snap, p))
	rec := p.Record(EventToolsList, "")
	rec.Detail = map[string]any{"tools": len(tools)}
	if err := pl.write(ctx, rec); err != nil {
		return nil, err
	}
	res := &mcp.ListToolsResult{Tools: append(append(make([]*mcp.Tool, 0, len(tools)+len(builtins)), builtins...), tools...)}
	res.CacheScope = "private"
	return res, nil
}

// ListPrompts returns exactly the prompts p may discover.
func (pl *Pipeline) ListPrompts(ctx context.Context, p *authn.Principal) (mcp.Result, error) {
	snap := pl.cfg.Catalog.Snapshot()
	prompts := snap.VisiblePrompts(pl.visible(snap, p))
	rec := p.Record(EventPromptsList, "")
	rec.Detail = map[string]any{"prompts": len(prompts)}
	if err := pl.write(ctx, rec); err != nil {
		return nil, err
	}
	res := &mcp.ListPromptsResult{Prompts: prompts}
	res.CacheScope = "private"
	return res, nil
}

// ListResources returns exactly the resources (or with templates the
// resource templates) p may discover.
func (pl *Pipeline) ListResources(ctx context.Context, p *authn.Principal, templates bool) (mcp.Result, error) {
	snap := pl.cfg.Catalog.Snapshot()
	rs, ts := snap.VisibleResources(pl.visible(snap, p))
	rec := p.Record(EventResourcesList, "")
	rec.Detail = map[string]any{"resources": len(rs), "templates": len(ts), "list_templates": templates}
	if err := pl.write(ctx, rec); err != nil {
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
