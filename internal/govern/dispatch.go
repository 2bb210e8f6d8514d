package govern

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/tracing"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// dispatch is the stage that sends an admitted, recorded call upstream,
// and owns release (the user's count of calls in flight) from here on.
// A 2025-era client's call runs in its request. A 2026-07-28 client's
// call runs on its own, so that it can outlive this request if the
// upstream asks the client something (bridge.go); a request continuing
// such a call hands it the client's answer and waits again.
func (pl *Pipeline) dispatch(ctx context.Context, c *toolCall, release func()) (mcp.Result, error) {
	if pc := c.parked; pc != nil {
		release()
		if q, err := pc.attach(c.req.Client.InputResponses); err != nil || q != nil {
			if err != nil {
				return nil, err
			}
			return pl.asking(pc, q) // not answered: asked again
		}
		return pl.awaitJSON(ctx, c, pc)
	}
	if !c.relay.Modern {
		defer release()
		res, err := pl.run(ctx, c)
		c.reply = c.enc
		return res, err
	}
	pc := pl.park(c.p, c.t.ref, c.req.Args.digest, c.cont.Approval, c.req.Client.Capabilities)
	c.relay.Ask, c.relay.Admit = pc.ask, pc.admit
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(pl.life, func() { cancel(errShutdown) })
	pc.cancel, pc.ctx, pc.attached = cancel, callCtx, true
	pl.detached.Add(1)
	go func() {
		defer pl.detached.Done()
		defer release()
		defer stop()
		res, err := pl.run(callCtx, c)
		cancel(nil)
		pc.enc = c.enc
		pl.ended(pc, res, err)
	}()
	return pl.awaitJSON(ctx, c, pc)
}

// awaitJSON is await, keeping the JSON the call's outcome stage made of
// its result when that is what the request gets.
func (pl *Pipeline) awaitJSON(ctx context.Context, c *toolCall, pc *parkedCall) (mcp.Result, error) {
	res, err := pl.await(ctx, pc)
	select {
	case <-pc.done: // pc.res and pc.enc are set, and no longer change
		if err == nil && res == pc.res {
			c.reply = pc.enc
		}
	default:
	}
	return res, err
}

// run calls the upstream as the user, bounded by ctx, the call's timeout
// and kill switches (which cut it while it runs), and hands what came
// back to the outcome stage.
func (pl *Pipeline) run(ctx context.Context, c *toolCall) (mcp.Result, error) {
	e, u := c.t.tool, c.t.upstream
	start := pl.cfg.Now()
	callCtx, cancel := context.WithTimeout(ctx, callTimeout(pl.cfg.CallTimeout, u.CallTimeout, e.CallTimeout))
	defer cancel()
	callCtx, done, stopped := pl.untilStop(callCtx)
	defer done()
	if stopped { // nothing is sent once the stop has begun
		return pl.outcome(ctx, callCtx, c, nil, errShutdown, 0, start)
	}
	callCtx, cut := context.WithCancelCause(callCtx)
	defer pl.calls.add(c.t.subject(c.p), cut)()
	tc := upstream.ToolCall{Name: e.UpstreamTool, Arguments: c.req.Args.raw, ParamHeaders: e.ParamHeaders, Continuation: forward(c.req.Client, c.cont), Pinned: e.Tool}
	tc.Args, _ = c.req.Args.value.(map[string]any)
	res, attempts, err := pl.call(callCtx, c.p, u, e, tc, c.relay)
	return pl.outcome(ctx, callCtx, c, res, err, attempts, start)
}

// untilStop is ctx cut by the stop (Drain; cause errShutdown), for an
// upstream request, and whether the stop has begun already: then nothing
// is to be sent (a cut registered on a stop that happened lands only
// later, in a goroutine of its own).
func (pl *Pipeline) untilStop(ctx context.Context) (context.Context, func(), bool) {
	ctx, cut := context.WithCancelCause(ctx)
	stop := context.AfterFunc(pl.draining, func() { cut(errShutdown) })
	return ctx, func() { stop(); cut(nil) }, pl.draining.Err() != nil
}

// Retries: a tool whose pinned definition says it is read-only or
// idempotent is called again when the upstream failed to answer (never
// when it answered, even with an error), up to maxAttempts in all, with
// exponential backoff and jitter, within the call's deadline, and not
// while the upstream's circuit is open.
const (
	maxAttempts  = 3
	retryBackoff = 100 * time.Millisecond
)

// callTimeout is the tightest of the server's bound and the upstream's and
// tool's timeouts where set: the server's is the overall maximum, even
// while progress keeps arriving.
func callTimeout(server time.Duration, set ...time.Duration) time.Duration {
	d := server
	for _, s := range set {
		if s > 0 && s < d {
			d = s
		}
	}
	return d
}

// retryable reports whether the pinned definition allows repeating a call.
func retryable(t *mcp.Tool) bool {
	return t != nil && t.Annotations != nil && (t.Annotations.ReadOnlyHint || t.Annotations.IdempotentHint)
}

// callOnce is one attempt of call, in an upstream call span whose
// traceparent the upstream receives (the client's traceparent when
// tracing is off).
func (pl *Pipeline) callOnce(ctx context.Context, p *authn.Principal, u spec.Upstream, tc upstream.ToolCall, relay *upstream.Relay, attempt int) (*mcp.CallToolResult, error) {
	caller := upstream.CallerOf(p)
	ctx, span := pl.cfg.Tracer.Start(ctx, tracing.SpanUpstream)
	defer span.End()
	if span.Recording() {
		span.Set(tracing.AttrUpstream.String(u.Name), tracing.AttrAttempt.Int(attempt))
		caller.Traceparent = span.Traceparent()
	}
	res, err := pl.cfg.Upstreams.Call(ctx, caller, u, tc, relay)
	switch {
	case err != nil && upstream.Answered(err):
		span.Fail(ReasonRefusedUpstream)
	case err != nil:
		span.Fail(ReasonUpstream)
	case res != nil && res.IsError:
		span.Set(tracing.AttrOutcome.String("tool-error"))
	}
	return res, err
}

// call runs the tool on its upstream as p, retrying as above; it returns
// how many attempts were made.
func (pl *Pipeline) call(ctx context.Context, p *authn.Principal, u spec.Upstream, e *catalog.Entry, tc upstream.ToolCall,
	relay *upstream.Relay) (*mcp.CallToolResult, int, error) {
	for attempt := 1; ; attempt++ {
		res, err := pl.callOnce(ctx, p, u, tc, relay, attempt)
		if err == nil || attempt == maxAttempts || !retryable(e.Tool) || upstream.Answered(err) || upstream.Suspended(err) || upstream.Refused(err) || upstream.Busy(err) || ctx.Err() != nil {
			return res, attempt, err
		}
		wait := retryBackoff << (2 * (attempt - 1))
		wait += time.Duration(rand.Int64N(int64(wait) / 2))
		pl.cfg.Logger.Info("retrying an idempotent call", "request_id", p.RequestID, "tool", e.Name, "attempt", attempt+1, "after", wait)
		select {
		case <-ctx.Done():
			return res, attempt, err
		case <-time.After(wait):
		}
	}
}
