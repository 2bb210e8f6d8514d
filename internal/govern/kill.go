package govern

import (
	"context"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/killswitch"
)

// KillSwitch tells whether an active kill switch covers a request, and
// takes the pipeline as what cuts the calls in flight a new switch covers.
type KillSwitch interface {
	Blocking(sub killswitch.Subject) (killswitch.Switch, bool)
	SetCutter(c killswitch.Cutter)
}

// blocked reports whether a switch covers sub.
func (pl *Pipeline) blocked(sub killswitch.Subject) (killswitch.Switch, bool) {
	return pl.cfg.Kill.Blocking(sub)
}

// unkilled is the kill-switch stage: a request no switch covers goes on;
// one that a switch covers is refused like a missing target, the switch
// named on the record.
func (pl *Pipeline) unkilled(ctx context.Context, p *authn.Principal, rec audit.Record, t target) error {
	sw, killed := pl.blocked(t.subject(p))
	if !killed {
		return nil
	}
	if rec.Detail == nil {
		rec.Detail = map[string]any{}
	}
	rec.Detail["killswitch"] = sw.ID
	return pl.Deny(ctx, rec, ReasonKilled, t.notFound)
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
func (pl *Pipeline) Cut(covers func(killswitch.Subject) bool) int {
	pl.calls.mu.Lock()
	defer pl.calls.mu.Unlock()
	n := 0
	for _, c := range pl.calls.calls {
		if covers(c.sub) {
			c.cancel(errKilled)
			n++
		}
	}
	return n
}
