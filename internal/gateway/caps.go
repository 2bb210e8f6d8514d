package gateway

import (
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/authn"
)

// Caps bound what one user may hold open at the door at once, over all
// their keys (calls in flight are the pipeline's: govern.Config.CallsPerUser).
// Zero fields take the defaults.
type Caps struct {
	Sessions int // open 2025-era sessions (default 64)
	Streams  int // open GET event streams (default 16)
}

func (c Caps) withDefaults() Caps {
	if c.Sessions <= 0 {
		c.Sessions = 64
	}
	if c.Streams <= 0 {
		c.Streams = 16
	}
	return c
}

// Reason codes of refusals at a user's cap.
const (
	ReasonSessionsCap = "user-sessions-cap"
	ReasonStreamsCap  = "user-streams-cap"
)

// atCap records and answers a request refused at one of p's caps: 429 with
// Retry-After, and a message naming the cap.
func (g *Gateway) atCap(w http.ResponseWriter, r *http.Request, p *authn.Principal, id any, reason, what string, limit int) {
	g.refuse(r.Context(), p, reason, map[string]any{"limit": limit})
	w.Header().Set("Retry-After", "5")
	writeRPCError(w, http.StatusTooManyRequests, id, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: fmt.Sprintf("too many %s for this user (at most %d); end one and retry", what, limit)})
}
