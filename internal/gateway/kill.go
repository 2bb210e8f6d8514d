package gateway

import (
	"context"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/killswitch"
)

// EventKillBlocked records a request a kill switch stopped.
const EventKillBlocked = "killswitch-block"

// suspended answers a request of a user or key a switch covers (or of
// anyone, under --all), and records it.
func (g *Gateway) suspended(w http.ResponseWriter, r *http.Request, p *authn.Principal, sw killswitch.Switch) {
	rec := p.Record(EventKillBlocked, "killswitch:"+sw.ID)
	rec.Outcome, rec.Reason = audit.Denied, govern.ReasonKilled
	if _, err := g.cfg.Auditor.Write(context.WithoutCancel(r.Context()), audit.Entry{Record: rec}); err != nil {
		g.cfg.Logger.Error("cannot record a kill switch block", "request_id", p.RequestID, "err", err)
	}
	writeRPCError(w, http.StatusForbidden, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: "access is suspended by kill switch " + sw.ID + "; ask an operator"})
}
