package gateway

import (
	"context"
	"encoding/json"
	"reflect"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/upstream"
)

// route is the SDK receiving middleware: it hands what is governed (tools,
// prompts, resources, completion) to the pipeline, lets protocol plumbing
// through, and refuses the rest.
func (g *Gateway) route(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if !allowedMethods[method] {
			return nil, errMethodUnknown
		}
		if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss.ID() != "" {
			g.sessions.sawSDK(ss.ID(), ss, method) // what a session's direct tools/call needs to know (legacy.go)
		}
		switch method {
		case "tools/list", "tools/call", "prompts/list", "prompts/get", "completion/complete",
			"resources/list", "resources/templates/list", "resources/read":
		default:
			return next(ctx, method, req)
		}
		p := principalOf(req)
		if p == nil { // cannot happen behind ServeHTTP; refuse rather than guess
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated"}
		}
		var res mcp.Result
		var err error
		switch method {
		case "tools/list":
			return g.pl.ListTools(ctx, p)
		case "prompts/list":
			return g.pl.ListPrompts(ctx, p)
		case "resources/list":
			return g.pl.ListResources(ctx, p, false)
		case "resources/templates/list":
			return g.pl.ListResources(ctx, p, true)
		case "resources/read":
			params := req.(*mcp.ReadResourceRequest).Params
			res, err = g.pl.ReadResource(ctx, p, params.URI, clientContinuation(req, params.Meta, params.InputResponses, params.RequestState))
		case "prompts/get":
			params := req.(*mcp.GetPromptRequest).Params
			res, err = g.pl.GetPrompt(ctx, p, params, clientContinuation(req, params.Meta, params.InputResponses, params.RequestState))
		case "completion/complete":
			res, err = g.pl.Complete(ctx, p, req.(*mcp.CompleteRequest).Params)
		default:
			call := req.(*mcp.CallToolRequest)
			relay := &upstream.Relay{Session: call.Session, Ctx: ctx, ProgressToken: call.Params.GetProgressToken(), RequestID: p.RequestID, Modern: isModern(req)}
			tr := govern.ToolRequest{Name: call.Params.Name, Client: clientContinuation(req, call.Params.Meta, call.Params.InputResponses, call.Params.RequestState)}
			tr.Args, tr.ArgErr = govern.ParseArgs(call.Params.Arguments)
			res, err = g.pl.CallTool(ctx, p, tr, relay)
		}
		if err == nil && isModern(req) {
			g.answeredBy(res)
			return completeResult(res)
		}
		return res, err
	}
}

func principalOf(req mcp.Request) *authn.Principal {
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return nil
	}
	p, _ := extra.TokenInfo.Extra["principal"].(*authn.Principal)
	return p
}

// isModern reports whether a request carries 2026-07-28 per-request _meta.
func isModern(req mcp.Request) bool {
	m, ok := req.GetParams().(interface{ GetMeta() map[string]any })
	if !ok {
		return false
	}
	_, modern := m.GetMeta()[metaProtocolVersion]
	return modern
}

// answeredBy names Ostiary in a 2026-07-28 result's _meta as the server
// that answered: the client talks to Ostiary, and an upstream's own name
// (which the SDK would otherwise leave in place) is not its business.
func (g *Gateway) answeredBy(res mcp.Result) {
	if res == nil || reflect.ValueOf(res).IsNil() {
		return
	}
	m := res.GetMeta()
	if m == nil {
		m = map[string]any{}
	}
	m[mcp.MetaKeyServerInfo] = g.impl
	res.SetMeta(m)
}

// completeResult marks an upstream's result for a 2026-07-28 client as
// complete (resultType is required there) unless the upstream set a result
// type itself. The SDK sets it only for results of handlers registered with
// it, and some result types only through decoding, so the result is
// re-encoded into a value of its own type.
func completeResult(res mcp.Result) (mcp.Result, error) {
	if res == nil || reflect.ValueOf(res).IsNil() {
		return res, nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if hasResultType(b) {
		return res, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["resultType"] = json.RawMessage(`"complete"`)
	if b, err = json.Marshal(m); err != nil {
		return nil, err
	}
	out := reflect.New(reflect.TypeOf(res).Elem()).Interface().(mcp.Result)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// clientContinuation is what a request brings to a multi round-trip: for
// a 2026-07-28 client its declared capabilities, answers and state.
func clientContinuation(req mcp.Request, meta mcp.Meta, answers mcp.InputResponseMap, state string) upstream.Continuation {
	if !isModern(req) {
		return upstream.Continuation{RequestState: state}
	}
	c := upstream.Continuation{Capabilities: rawJSON(meta[metaCapabilities]), RequestState: state}
	if answers != nil {
		c.InputResponses = rawJSON(answers)
	}
	return c
}

// rawJSON encodes v (nil stays nil).
func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
