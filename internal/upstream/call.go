package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// The requests made on a user's session (tools/call, resources/read,
// prompts/get, completion/complete), each under the upstream's circuit
// breaker and concurrency slots and detached from the inbound request's
// values; and how their errors are told apart: the upstream's own answer,
// a request Ostiary refused to send, the upstream failing.

// refusedError is a request Ostiary would not send on the caller's behalf:
// a secret its environment has no value for, or one not scoped to the
// upstream. It says nothing of the upstream's health, so it neither counts
// against its circuit breaker nor drops the session, and it is not retried.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// Refused reports whether err is a request Ostiary refused to send (see
// refusedError).
func Refused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}

// detach returns a context that carries none of parent's values (the
// inbound request's protocol state must not leak into upstream requests)
// but is cancelled with it.
func detach(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := context.AfterFunc(parent, func() { cancel(context.Cause(parent)) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// ToolCall is one tools/call to make on an upstream.
type ToolCall struct {
	Name      string          // the upstream's own name of the tool
	Arguments json.RawMessage // as the client sent them
	// ParamHeaders mirror arguments in Mcp-Param-* headers (x-mcp-header).
	ParamHeaders []spec.ParamHeader
	Args         map[string]any // Arguments as parsed, for ParamHeaders
	// Pinned is the tool's pinned definition: an OpenAPI upstream's call
	// is made from the binding it holds.
	Pinned *mcp.Tool

	Continuation
}

// Call calls a tool on u as c. Progress and log notifications of the call
// go to relay (if not nil); cancelling ctx cancels the upstream call.
//
// A 2026-07-28 client's call to an HTTP upstream that speaks 2026-07-28
// too is one POST made here (callModern): an input_required result then
// reaches the client as the upstream sent it, so the client answers the
// upstream's questions itself. A call to an HTTP upstream holding a
// session in a 2025 revision is one POST on that session, made here too
// (callSession). Other calls go through the SDK's session,
// which answers an input_required result by asking the client of the
// call (a session-based one) through the relay.
func (p *Pool) Call(ctx context.Context, c Caller, u spec.Upstream, call ToolCall, relay *Relay) (*mcp.CallToolResult, error) {
	if u.Kind == spec.HTTPAPI {
		return p.callAPI(ctx, c, u, call, relay)
	}
	var res *mcp.CallToolResult
	err := p.do(ctx, c, u, "tool:"+call.Name, func(ctx context.Context, e *pooled) (err error) {
		meta := mcp.Meta{}
		if relay != nil {
			relay.know(e.injected)
			token := newToken()
			defer e.track(token, relay)()
			if relay.ProgressToken != nil {
				meta["progressToken"] = token
			}
			ctx = withRelay(ctx, relay)
		}
		if call.modern() && e.http != nil && modern(e.cs) {
			res, err = p.callModern(ctx, e, call, meta)
			return err
		}
		if call.continues() {
			return errNotContinuable
		}
		if onSession(e) {
			res, err = p.callSession(ctx, e, call, meta)
			return err
		}
		if u.Kind == spec.Stdio {
			tok, err := p.assert(c, u)
			if err != nil {
				return err
			}
			meta[MetaIdentity] = tok
			// A stdio upstream has no headers: the trace context goes in
			// _meta, where OpenTelemetry's MCP conventions look for it.
			if c.Traceparent != "" {
				meta[MetaTraceparent] = c.Traceparent
			}
		}
		params := &mcp.CallToolParams{Name: call.Name, Arguments: call.Arguments}
		if len(meta) > 0 {
			params.Meta = meta
		}
		res, err = e.cs.CallTool(ctx, params)
		return err
	})
	return res, err
}

// ReadResource reads a resource from u as c, redacted as by ask. As for
// Call, a 2026-07-28 client's read from a 2026-07-28 HTTP upstream is made
// here, so that an input_required result reaches the client.
func (p *Pool) ReadResource(ctx context.Context, c Caller, u spec.Upstream, uri string, cont Continuation) (*mcp.ReadResourceResult, error) {
	return ask(p, ctx, c, u, "resource:"+uri, func(ctx context.Context, e *pooled) (*mcp.ReadResourceResult, error) {
		if cont.modern() && e.http != nil && modern(e.cs) {
			raw, err := p.modernRequest(ctx, e, "resources/read", uri, map[string]any{"uri": uri}, cont, nil, nil)
			if err != nil {
				return nil, err
			}
			res := new(mcp.ReadResourceResult)
			if err := json.Unmarshal(raw, res); err != nil {
				return nil, fmt.Errorf("the upstream's result is malformed: %w", err)
			}
			return res, nil
		}
		if cont.continues() {
			return nil, errNotContinuable
		}
		params := &mcp.ReadResourceParams{URI: uri}
		if u.Kind == spec.Stdio {
			tok, err := p.assert(c, u)
			if err != nil {
				return nil, err
			}
			params.Meta = mcp.Meta{MetaIdentity: tok}
		}
		return e.cs.ReadResource(ctx, params)
	})
}

// PromptGet is one prompts/get to make on an upstream.
type PromptGet struct {
	Name      string // the upstream's own name of the prompt
	Arguments map[string]string
	Continuation
}

// GetPrompt gets a prompt from u as c, redacted as by ask. As for Call, a
// 2026-07-28 client's request to a 2026-07-28 HTTP upstream is made here,
// so that an input_required result reaches the client.
func (p *Pool) GetPrompt(ctx context.Context, c Caller, u spec.Upstream, get PromptGet) (*mcp.GetPromptResult, error) {
	return ask(p, ctx, c, u, "prompt:"+get.Name, func(ctx context.Context, e *pooled) (*mcp.GetPromptResult, error) {
		if get.modern() && e.http != nil && modern(e.cs) {
			params := map[string]any{"name": get.Name}
			if get.Arguments != nil {
				params["arguments"] = get.Arguments
			}
			raw, err := p.modernRequest(ctx, e, "prompts/get", get.Name, params, get.Continuation, nil, nil)
			if err != nil {
				return nil, err
			}
			res := new(mcp.GetPromptResult)
			if err := json.Unmarshal(raw, res); err != nil {
				return nil, fmt.Errorf("the upstream's result is malformed: %w", err)
			}
			return res, nil
		}
		if get.continues() {
			return nil, errNotContinuable
		}
		params := &mcp.GetPromptParams{Name: get.Name, Arguments: get.Arguments}
		if u.Kind == spec.Stdio {
			tok, err := p.assert(c, u)
			if err != nil {
				return nil, err
			}
			params.Meta = mcp.Meta{MetaIdentity: tok}
		}
		return e.cs.GetPrompt(ctx, params)
	})
}

// Complete asks u as c for argument completions, redacted as by ask.
func (p *Pool) Complete(ctx context.Context, c Caller, u spec.Upstream, params *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	return ask(p, ctx, c, u, "completion:"+completionRef(params), func(ctx context.Context, e *pooled) (*mcp.CompleteResult, error) {
		return e.cs.Complete(ctx, params)
	})
}

// ask runs one request on c's session to u (as do) and removes from its
// answer, result or error, the secrets injected into the requests that
// produced it and credential shapes, as for tool calls, recording what it
// removed (target names the request).
func ask[T any](p *Pool, ctx context.Context, c Caller, u spec.Upstream, target string, fn func(context.Context, *pooled) (*T, error)) (*T, error) {
	var res *T
	col := &Relay{}
	err := p.do(ctx, c, u, target, func(ctx context.Context, e *pooled) (err error) {
		col.know(e.injected)
		res, err = fn(withRelay(ctx, col), e)
		return err
	})
	if err != nil {
		err = redactedError(col, err)
	} else {
		res, err = RedactValue(col, res)
	}
	if rerr := p.recordEcho(ctx, c, u, target, col); rerr != nil {
		return nil, rerr
	}
	return res, err
}

// redactedError is err with what col redacts removed from its message.
func redactedError(col *Relay, err error) error {
	msg := err.Error()
	red := string(col.Redact([]byte(msg)))
	if red == msg {
		return err
	}
	var rpcErr *jsonrpc.Error
	if Answered(err) && errors.As(err, &rpcErr) {
		return &jsonrpc.Error{Code: rpcErr.Code, Message: string(col.Redact([]byte(rpcErr.Message)))}
	}
	return errors.New(red)
}

// do runs one request on c's session to u, connecting if needed, under
// u's circuit breaker and concurrency limit, detached from the inbound
// context's values, and drops the session if the transport failed.
func (p *Pool) do(ctx context.Context, c Caller, u spec.Upstream, what string, fn func(context.Context, *pooled) error) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	err := p.guard(ctx, u, c.User, what, func() error {
		e, err := p.entry(ctx, c, u)
		if err != nil {
			return err
		}
		defer p.release(e)
		return fn(WithCaller(ctx, c), e)
	})
	p.dropIfBroken(ctx, c, u, err)
	return err
}

// dropIfBroken drops the session after a failure that was not a JSON-RPC
// error answer (so the session itself may be broken).
func (p *Pool) dropIfBroken(ctx context.Context, c Caller, u spec.Upstream, err error) {
	if transportFailure(ctx, err) {
		p.Drop(c, u.Name)
	}
}

// transportFailure reports whether err is the upstream failing (not a
// JSON-RPC error answer, and not the caller giving up).
func transportFailure(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil { // a call that ran out of time failed; one the caller cancelled did not
		return errors.Is(context.Cause(ctx), context.DeadlineExceeded)
	}
	return !Answered(err) && !Refused(err)
}

// codeRejected is the SDK's code for a request its transport could not
// deliver (an HTTP error status, say); a JSON-RPC error with any other code
// in the chain is the upstream's own answer.
const codeRejected = -32005

// Answered reports whether err carries a JSON-RPC error answer from the
// upstream (as opposed to a failure to get one).
func Answered(err error) bool {
	var found bool
	var walk func(error)
	walk = func(e error) {
		for e != nil && !found {
			if we, ok := e.(*jsonrpc.Error); ok && we.Code != codeRejected {
				found = true
				return
			}
			if multi, ok := e.(interface{ Unwrap() []error }); ok {
				for _, m := range multi.Unwrap() {
					walk(m)
				}
				return
			}
			e = errors.Unwrap(e)
		}
	}
	walk(err)
	return found
}
