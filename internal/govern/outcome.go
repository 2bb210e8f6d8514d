package govern

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// outcome is the stage after the upstream: it classifies what came back
// (an answer, questions for the client, an upstream's refusal, a timeout,
// a cut), records it, redacts injected secrets the upstream echoed, and
// only then returns what the client gets. ctx is the call's, callCtx the
// upstream request's (its cause says why it ended).
func (pl *Pipeline) outcome(ctx, callCtx context.Context, c *toolCall, res *mcp.CallToolResult, err error, attempts int, start time.Time) (mcp.Result, error) {
	p, name, e, u, relay, args, cont := c.p, c.t.name, c.t.tool, c.t.upstream, c.relay, c.req.Args, c.cont
	out := p.Record(EventToolResult, "tool:"+name)
	out.Detail = map[string]any{"upstream": e.Upstream, "latency_us": pl.cfg.Now().Sub(start).Microseconds(), "decision_seq": c.seq}
	if attempts > 1 {
		out.Detail["attempts"] = attempts
	}
	var rpcErr *jsonrpc.Error
	switch {
	case context.Cause(callCtx) == errKilled:
		out.Outcome, out.Reason = audit.Failed, ReasonKilled
		res, err = nil, errKilled
	case err == nil && res.IsError && errors.Is(context.Cause(callCtx), errShutdown):
		// A call cut by the stop (Drain, Close): an upstream may still
		// answer the cut, or a withdrawn question, with an error of its own
		// making. (A successful answer that beat the stop is the call's
		// outcome.)
		out.Detail["is_error"] = true
		out.Outcome, out.Reason = audit.Failed, ReasonGatewayStopping
		res, err = toolError(fmt.Sprintf("the gateway is stopping; the call was cut (request %s)", p.RequestID)), nil
	case err == nil && res.InputRequests != nil:
		pl.history.Touch(p.User, e.PolicyTool().Classes(), pl.cfg.Now())
		if res.RequestState, err = pl.ask(ctx, &out, p, "tool:"+name, args.digest, c.req.Client, res.InputRequests, res.RequestState, cont, relay.Redact,
			u.Name, relay.Gate); err != nil {
			res = nil
		}
	case err == nil:
		out.Detail["is_error"] = res.IsError
		res.RequestState = "" // only Ostiary's sealed states reach the client
		pl.history.Touch(p.User, e.PolicyTool().Classes(), pl.cfg.Now())
	case upstream.Answered(err) && errors.As(err, &rpcErr):
		out.Outcome, out.Reason = audit.Failed, ReasonRefusedUpstream
		out.Detail["error_code"] = rpcErr.Code
	case upstream.Suspended(err):
		// The upstream's circuit is open: refused at once, nothing was sent.
		out.Outcome, out.Reason = audit.Failed, ReasonCircuitOpen
		res, err = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s; nothing was sent (request %s)", err.Error(), p.RequestID)}}}, nil
	case upstream.Busy(err):
		// No slot was free: refused at once, nothing was sent.
		out.Outcome, out.Reason = audit.Failed, ReasonUpstreamBusy
		res, err = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s (request %s)", err.Error(), p.RequestID)}}}, nil
	case isRefusedCommand(err):
		// The operator's allow-list no longer holds the upstream's program:
		// nothing was started (the pool recorded the refusal).
		out.Outcome, out.Reason = audit.Denied, upstream.ReasonStdioRefused
		err = nil
		res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{
			Text: fmt.Sprintf("upstream %s cannot be started: its command is not allowed on this server (request %s)", u.Name, p.RequestID)}}}
	default:
		var text string
		out.Outcome, out.Reason, text = audit.Failed, ReasonUpstream, fmt.Sprintf("upstream %s did not answer the call", u.Name)
		if class := failureClass(err); class != "" {
			text += ": " + class
		}
		switch {
		case pl.Stopping() || errors.Is(context.Cause(callCtx), errShutdown):
			out.Reason, text = ReasonGatewayStopping, "the gateway is stopping; the call was cut"
		case ctx.Err() != nil:
			out.Reason, text = ReasonClientCancelled, "the call was cancelled"
		case errors.Is(context.Cause(callCtx), context.DeadlineExceeded):
			out.Reason, text = ReasonTimeout, fmt.Sprintf("upstream %s did not answer within the call's time limit", u.Name)
		}
		pl.cfg.Logger.Warn("upstream call failed", "request_id", p.RequestID, "principal", p.User, "tool", name, "upstream", u.Name, "reason", out.Reason,
			"err", string(relay.Redact([]byte(err.Error())))) // an upstream may echo what it was sent
		err = nil
		res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s (request %s)", text, p.RequestID)}}}
	}
	if err != nil {
		if errors.As(err, &rpcErr) {
			err = &jsonrpc.Error{Code: rpcErr.Code, Message: string(relay.Redact([]byte(rpcErr.Message))), Data: redactData(relay, rpcErr.Data)}
		}
		res = nil
	} else {
		res, c.enc, err = upstream.RedactEncoded(relay, res) // an upstream may echo what it was sent
	}
	if err == nil && c.enc != nil {
		out.Detail["response_bytes"] = len(c.enc)
	} else {
		c.enc = nil
		out.Detail["response_bytes"] = responseBytes(res, err)
	}
	if _, werr := pl.record(context.WithoutCancel(ctx), out); werr != nil {
		pl.cfg.Logger.Error("cannot record a call's outcome", "request_id", p.RequestID, "tool", name, "err", werr)
		return nil, ErrAuditRan
	}
	if werr := pl.echoed(ctx, p, name, u.Name, relay); werr != nil {
		return nil, ErrAuditRan
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// responseBytes is the size of what the client gets for a call: the
// result's JSON, or the error's.
func responseBytes(res mcp.Result, err error) int {
	var b []byte
	if err != nil {
		b, _ = json.Marshal(err)
	} else if res != nil && !reflect.ValueOf(res).IsNil() {
		b, _ = json.Marshal(res)
	}
	return len(b)
}

func isRefusedCommand(err error) bool {
	_, refused := spec.RefusedCommand(err)
	return refused
}

// redactData is an upstream error's data with injected secrets removed.
func redactData(relay *upstream.Relay, data json.RawMessage) json.RawMessage {
	if len(data) == 0 {
		return nil
	}
	return relay.RedactJSON(data)
}

// echoed records, before the answer leaves, what was redacted from a tool
// call's answers (its result or error, and the notifications and questions
// relayed while it ran): one secret-echo-redacted record per call, naming
// each secret and version, never its value. The answer is withheld if the
// record cannot be written.
func (pl *Pipeline) echoed(ctx context.Context, p *authn.Principal, tool, upstreamName string, relay *upstream.Relay) error {
	reds := relay.Redactions()
	if len(reds) == 0 {
		return nil
	}
	rec := p.Record(upstream.EventSecretEcho, "tool:"+tool)
	rec.Detail = upstream.EchoDetail(upstreamName, reds)
	rec.Detail["tool"] = tool
	if err := pl.write(context.WithoutCancel(ctx), rec); err != nil {
		return err
	}
	return nil
}

// relayOutcome is the outcome stage of a prompts/get or resources/read:
// the upstream's questions put to the client (ask) or its own state
// cleared from the answer, the outcome recorded, before anything leaves.
// upErr is the upstream's error; reqs and state (nil with upErr) are the
// answer's questions and requestState, which relayOutcome rewrites. It
// returns what the client gets instead of the answer, if anything.
func (pl *Pipeline) relayOutcome(ctx context.Context, p *authn.Principal, event string, t target, gate upstream.Gate, digest string,
	client upstream.Continuation, cont continuation, seq uint64, start time.Time, upErr error, reqs mcp.InputRequestMap, state *string) error {
	out := p.Record(event, t.ref)
	out.Detail = map[string]any{"upstream": t.upstream.Name, "latency_us": pl.cfg.Now().Sub(start).Microseconds(), "decision_seq": seq}
	err := upErr
	switch {
	case err != nil && pl.Stopping():
		out.Outcome, out.Reason = audit.Failed, ReasonGatewayStopping
		err = errShutdown // cut by the stop, or not sent at all
	case err != nil:
		out.Outcome, out.Reason = audit.Failed, ReasonUpstream
	case reqs != nil:
		// Redacted by the pool, which decoded the answer.
		*state, err = pl.ask(ctx, &out, p, t.ref, digest, client, reqs, *state, cont, nil, t.upstream.Name, gate)
	default:
		*state = "" // only Ostiary's sealed states reach the client
	}
	if werr := pl.write(context.WithoutCancel(ctx), out); werr != nil {
		return werr
	}
	return err
}
