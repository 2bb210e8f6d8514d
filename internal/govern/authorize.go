package govern

import (
	"context"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/tracing"
)

// authorize lets through a target p may invoke. A missing target and a
// hidden one are refused alike (recorded with different reasons).
func (pl *Pipeline) authorize(ctx context.Context, p *authn.Principal, rec audit.Record, t target) error {
	switch {
	case !t.found:
		return pl.Deny(ctx, rec, ReasonUnknownTool, t.notFound)
	case !p.Allows(authz.Invoke, t.name):
		return pl.Deny(ctx, rec, ReasonNotPermitted, t.notFound)
	}
	return nil
}

// admit is the two stages every request to an upstream passes first:
// authorize, then the kill switch.
func (pl *Pipeline) admit(ctx context.Context, p *authn.Principal, rec audit.Record, t target) error {
	ctx, span := pl.cfg.Tracer.Start(ctx, tracing.SpanAuthorize)
	defer span.End()
	if err := pl.authorize(ctx, p, rec, t); err != nil {
		span.Fail("refused")
		return err
	}
	if err := pl.unkilled(ctx, p, rec, t); err != nil {
		span.Fail("refused")
		return err
	}
	if span.Recording() && t.upstream.Name != "" {
		span.Set(tracing.AttrTool.String(t.name), tracing.AttrUpstream.String(t.upstream.Name))
	}
	return nil
}

// visible reports whether p may see a name of snap in a listing: discover
// grant and no kill switch on it or its upstream.
func (pl *Pipeline) visible(snap *catalog.Snapshot, p *authn.Principal) func(name string) bool {
	return func(name string) bool {
		if !p.Allows(authz.Discover, name) {
			return false
		}
		_, killed := pl.blocked(killswitch.Subject{User: p.User, KeyID: p.KeyID, Upstream: snap.UpstreamOf(name), Tool: name})
		return !killed
	}
}
