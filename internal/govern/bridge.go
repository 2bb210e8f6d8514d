package govern

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/quota"
	"github.com/ostiary/ostiary/internal/upstream"
)

// The era bridge for questions. A session-based upstream asks the client
// something during a call with a request of its own (elicitation,
// sampling); a 2026-07-28 client takes no requests. So a 2026-07-28
// client's call runs on its own goroutine (a parked call), and a question
// from the upstream ends the client's request with an input_required
// result that carries the question under an id of Ostiary's and a sealed
// state naming the parked call. The client's next call, with its answer
// and that state, is governed and audited like any other, hands the answer
// to the waiting upstream and waits in turn: for the result, or for the
// next question. The upstream's request waits for at most stateTTL; the
// call's own timeout and kill switches apply throughout, and its outcome
// is recorded when it ends, whoever is waiting then.

// parkedCall is a 2026-07-28 client's call in flight.
type parkedCall struct {
	token               string
	user, keyID, target string
	digest, approval    string
	caps                json.RawMessage // the client's declared capabilities
	asks                chan *question  // from the upstream, to the request waiting
	done                chan struct{}   // closed when the call has ended and res, err are set
	res                 mcp.Result
	enc                 []byte // the JSON of res, if the outcome stage made it
	err                 error
	cancel              context.CancelCauseFunc
	ctx                 context.Context // the call's: a question is not waited on past it
	mu                  sync.Mutex
	parked              bool      // a question went out: the call no longer ends with a request
	attached            bool      // a request is waiting on it
	outstanding         *question // the question the client was given
	limit               *quota.PerUser
	counted             bool // holds one of its user's places (limit)
}

// maxParkedPerUser bounds the calls a user may leave waiting on questions:
// each holds one of its upstream's concurrency slots while it waits.
const maxParkedPerUser = 4

// question is an upstream's request of the client.
type question struct {
	id, method string
	params     any
	answer     chan json.RawMessage
}

// errShutdown ends calls still under way when the gateway stops.
var errShutdown = errors.New("the gateway is stopping")

// errNotWaiting refuses a continuation of a call that is no longer parked.
var errNotWaiting = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid requestState: the call it continues has ended or expired; call again without it"}

// park registers a new call of p's as able to ask its client questions.
func (pl *Pipeline) park(p *authn.Principal, target, digest, approval string, caps json.RawMessage) *parkedCall {
	pc := &parkedCall{token: rand.Text(), user: p.User, keyID: p.KeyID, target: target, digest: digest, approval: approval, caps: caps,
		asks: make(chan *question), done: make(chan struct{}), limit: pl.parked}
	pl.parkedCalls.Store(pc.token, pc)
	return pc
}

// ended keeps the call's outcome for the request waiting, or, if the call
// asked its client something, for the client's next call: until one takes
// it, or stateTTL has passed. A call that asked nothing is forgotten at once
// (the request that made it is waiting on it).
func (pl *Pipeline) ended(pc *parkedCall, res mcp.Result, err error) {
	pc.res, pc.err = res, err
	pc.mu.Lock()
	parked := pc.parked
	if pc.counted {
		pc.limit.Release(pc.user)
		pc.counted = false
	}
	pc.mu.Unlock()
	close(pc.done)
	if !parked {
		pl.parkedCalls.Delete(pc.token)
		return
	}
	time.AfterFunc(stateTTL, func() { pl.parkedCalls.Delete(pc.token) })
}

// admit is the relay's Admit for pc: the client is asked only what its
// declared capabilities cover, and a user leaves at most maxParkedPerUser
// calls waiting on answers (each holds an upstream concurrency slot).
func (pc *parkedCall) admit(method string) error {
	if !upstream.Declares(pc.caps, method) {
		return &upstream.Refusal{Reason: "client-capability-missing", Message: method + " refused: the client did not declare the capability"}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.counted {
		if !pc.limit.Acquire(pc.user) {
			return &upstream.Refusal{Reason: "too-many-waiting",
				Message: fmt.Sprintf("%s refused: %d calls of this user already wait for answers", method, maxParkedPerUser)}
		}
		pc.counted = true
	}
	return nil
}

// ask is the relay's Ask for pc, once admit has let the question through:
// it hands the question to the request waiting on the call (or the next
// one) and waits for the answer.
func (pc *parkedCall) ask(ctx context.Context, method string, params any) (json.RawMessage, error) {
	q := &question{id: "q-" + rand.Text()[:8], method: method, params: params, answer: make(chan json.RawMessage, 1)}
	timer := time.NewTimer(stateTTL)
	defer timer.Stop()
	select {
	case pc.asks <- q:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-pc.ctx.Done():
		return nil, fmt.Errorf("%s: the call ended", method)
	case <-timer.C:
		return nil, fmt.Errorf("%s: the client was not there to ask", method)
	}
	select {
	case a := <-q.answer:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-pc.ctx.Done():
		return nil, fmt.Errorf("%s: the call ended", method)
	case <-timer.C:
		return nil, fmt.Errorf("%s: the client did not answer in time", method)
	}
}

// attach makes ctx's request the one waiting on pc, first handing over
// the client's answer to the question it was given (an unanswered
// question is asked again).
func (pc *parkedCall) attach(answers json.RawMessage) (*question, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.attached {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid requestState: another request is continuing this call"}
	}
	q := pc.outstanding
	if q != nil {
		var byID map[string]json.RawMessage
		json.Unmarshal(answers, &byID)
		a, ok := byID[q.id]
		if !ok {
			return q, nil // not answered: ask again
		}
		q.answer <- a
		pc.outstanding = nil
	}
	pc.attached = true
	return nil, nil
}

// await waits, for the request of ctx, until the call ends or asks the
// client something. Before its first question, the call ends with the
// request that made it (cancel); after, it lives on its own.
func (pl *Pipeline) await(ctx context.Context, pc *parkedCall) (mcp.Result, error) {
	defer func() {
		pc.mu.Lock()
		pc.attached = false
		pc.mu.Unlock()
	}()
	select {
	case <-pc.done:
		pl.parkedCalls.Delete(pc.token)
		return pc.res, pc.err
	case q := <-pc.asks:
		pc.mu.Lock()
		pc.parked, pc.outstanding = true, q
		pc.mu.Unlock()
		return pl.asking(pc, q)
	case <-ctx.Done():
		pc.mu.Lock()
		parked := pc.parked
		pc.mu.Unlock()
		if pl.Stopping() && !parked {
			// Cut by the stop: the client is told so, with the outcome
			// the call recorded, if it comes in time.
			pc.cancel(errShutdown)
			select {
			case <-pc.done:
				pl.parkedCalls.Delete(pc.token)
				return pc.res, pc.err
			case <-time.After(2 * time.Second):
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: errShutdown.Error()}
			}
		}
		if !parked {
			pc.cancel(context.Cause(ctx))
		}
		return nil, ctx.Err()
	}
}

// asking is the input_required result that puts q to the client.
func (pl *Pipeline) asking(pc *parkedCall, q *question) (mcp.Result, error) {
	state, err := pl.states.seal(continuation{Parked: pc.token, Approval: pc.approval}, &authn.Principal{User: pc.user, KeyID: pc.keyID},
		pc.target, pc.digest, pl.cfg.Now())
	if err != nil {
		return nil, err
	}
	params, err := json.Marshal(q.params)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(map[string]any{"resultType": "input_required", "requestState": state,
		"inputRequests": map[string]any{q.id: map[string]any{"method": q.method, "params": json.RawMessage(params)}}})
	if err != nil {
		return nil, err
	}
	res := new(mcp.CallToolResult)
	if err := json.Unmarshal(b, res); err != nil {
		return nil, fmt.Errorf("relaying the upstream's question: %w", err)
	}
	return res, nil
}

// parkedFor finds the parked call a continuation names. The state that
// named it opened for this caller, target and arguments, so it is theirs.
func (pl *Pipeline) parkedFor(cont continuation) (*parkedCall, error) {
	v, ok := pl.parkedCalls.Load(cont.Parked)
	if !ok {
		return nil, errNotWaiting
	}
	return v.(*parkedCall), nil
}
