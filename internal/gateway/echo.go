package gateway

import (
	"context"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/upstream"
)

// echoed records, before the answer leaves, what was redacted from a tool
// call's answers (its result or error, and the notifications and questions
// relayed while it ran): one secret-echo-redacted record per call, naming
// each secret and version, never its value. The answer is withheld if the
// record cannot be written.
func (g *Gateway) echoed(ctx context.Context, p *authn.Principal, tool, upstreamName string, relay *upstream.Relay) error {
	reds := relay.Redactions()
	if len(reds) == 0 {
		return nil
	}
	rec := p.Record(upstream.EventSecretEcho, "tool:"+tool)
	rec.Detail = upstream.EchoDetail(upstreamName, reds)
	rec.Detail["tool"] = tool
	if err := g.write(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	return nil
}
