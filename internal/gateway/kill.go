package gateway

import (
	"context"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/killswitch"
)

// KillSwitch tells whether an active kill switch covers a request, and
// takes the gateway as what cuts the calls in flight a new switch covers.
type KillSwitch interface {
	Blocking(sub killswitch.Subject) (killswitch.Switch, bool)
	SetCutter(c killswitch.Cutter)
}

// EventKillBlocked records a request a kill switch stopped.
const EventKillBlocked = "killswitch-block"

// ReasonKilled is the reason code of a call a kill switch stopped or cut.
const ReasonKilled = "killswitch"

// blocked reports whether a switch covers sub.
func (g *Gateway) blocked(sub killswitch.Subject) (killswitch.Switch, bool) {
	return g.cfg.Kill.Blocking(sub)
}

// suspended answers a request of a user or key a switch covers (or of
// anyone, under --all), and records it.
func (g *Gateway) suspended(w http.ResponseWriter, r *http.Request, p *authn.Principal, sw killswitch.Switch) {
	rec := p.Record(EventKillBlocked, "killswitch:"+sw.ID)
	rec.Outcome, rec.Reason = audit.Denied, ReasonKilled
	if _, err := g.cfg.Auditor.Write(context.WithoutCancel(r.Context()), audit.Entry{Record: rec}); err != nil {
		g.cfg.Logger.Error("cannot record a kill switch block", "request_id", p.RequestID, "err", err)
	}
	writeRPCError(w, http.StatusForbidden, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: "access is suspended by kill switch " + sw.ID + "; ask an operator"})
}

// inflight holds the cancel functions of calls on their way upstream, so a
// kill switch can cut them.
type inflight struct {
	mu    sync.Mutex
	next  uint64
	calls map[uint64]inflightCall
}

type inflightCall struct {
	sub    killswitch.Subject
	cancel context.CancelCauseFunc
}

// errKilled is the cause of a call cut by a kill switch.
var errKilled = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the call was cut by a kill switch"}

func (f *inflight) add(sub killswitch.Subject, cancel context.CancelCauseFunc) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[uint64]inflightCall{}
	}
	f.next++
	id := f.next
	f.calls[id] = inflightCall{sub, cancel}
	return func() {
		f.mu.Lock()
		delete(f.calls, id)
		f.mu.Unlock()
	}
}

// Cut cancels every call in flight that covers reports true for.
func (g *Gateway) Cut(covers func(killswitch.Subject) bool) int {
	g.calls.mu.Lock()
	defer g.calls.mu.Unlock()
	n := 0
	for _, c := range g.calls.calls {
		if covers(c.sub) {
			c.cancel(errKilled)
			n++
		}
	}
	return n
}
