package gateway

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/authn"
)

// Caps bound what one user may hold at once, over all their keys. Zero
// fields take the defaults.
type Caps struct {
	Sessions int // open 2025-era sessions (default 64)
	Streams  int // open GET event streams (default 16)
	Calls    int // tool calls in flight, waiting for approval included (default 32)
}

func (c Caps) withDefaults() Caps {
	if c.Sessions <= 0 {
		c.Sessions = 64
	}
	if c.Streams <= 0 {
		c.Streams = 16
	}
	if c.Calls <= 0 {
		c.Calls = 32
	}
	return c
}

// Reason codes of refusals at a user's cap.
const (
	ReasonSessionsCap = "user-sessions-cap"
	ReasonStreamsCap  = "user-streams-cap"
	ReasonCallsCap    = "user-calls-cap"
)

// holding counts what each user holds of one kind, against a limit.
type holding struct {
	mu    sync.Mutex
	limit int
	n     map[string]int
}

func newHolding(limit int) *holding { return &holding{limit: limit, n: map[string]int{}} }

// acquire takes one for user, or reports that user is at the limit.
func (h *holding) acquire(user string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n[user] >= h.limit {
		return false
	}
	h.n[user]++
	return true
}

func (h *holding) release(user string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n[user]--; h.n[user] <= 0 {
		delete(h.n, user)
	}
}

// atCap records and answers a request refused at one of p's caps: 429 with
// Retry-After, and a message naming the cap.
func (g *Gateway) atCap(w http.ResponseWriter, r *http.Request, p *authn.Principal, id any, reason, what string, limit int) {
	g.refuse(r.Context(), p, reason, map[string]any{"limit": limit})
	w.Header().Set("Retry-After", "5")
	writeRPCError(w, http.StatusTooManyRequests, id, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: fmt.Sprintf("too many %s for this user (at most %d); end one and retry", what, limit)})
}

// errCallsCap is a tool call refused at the user's cap of calls in flight.
func errCallsCap(limit int) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: fmt.Sprintf("too many calls in flight for this user (at most %d); retry when one ends", limit)}
}

