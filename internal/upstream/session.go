package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A tools/call to a session-based (2025-era) HTTP upstream is one POST on
// the session the SDK client opened, made here as the SDK client would
// make it (Mcp-Session-Id, the negotiated Mcp-Protocol-Version), without
// the SDK client: it re-encodes and re-parses its own request and decodes
// the result twice, which cost more than the rest of the call. The
// arguments forwarded are the canonical bytes the call was validated and
// decided on. What the SDK client did besides is done here too: the
// upstream's requests on the call's response stream (sampling,
// elicitation, roots, ping) are answered on the session, its
// notifications relayed (streamRelay), and a call given up is cancelled
// with notifications/cancelled. Everything else on the session (its
// initialize, lists, prompts, resources, completions) stays the SDK's.

// sessionIDPrefix marks the ids of the requests made here: they are
// strings, and the SDK client's ids on the same session are numbers, so
// the two never collide.
const sessionIDPrefix = "ostiary-"

// onSession reports whether a call on e can be made by callSession: an
// HTTP upstream holding a session in a 2025 revision.
func onSession(e *pooled) bool {
	if e.http == nil || e.cs == nil || e.cs.ID() == "" {
		return false
	}
	r := e.cs.InitializeResult()
	return r != nil && r.ProtocolVersion < modernVersion
}

// callSession makes one tools/call on e's session.
func (p *Pool) callSession(ctx context.Context, e *pooled, call ToolCall, meta mcp.Meta) (*mcp.CallToolResult, error) {
	id := strconv.Quote(sessionIDPrefix + strconv.FormatInt(callIDs.Add(1), 10))
	body, err := requestBody(id, "tools/call", call.Name, call.Arguments, meta)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Mcp-Protocol-Version", e.cs.InitializeResult().ProtocolVersion)
	h.Set("Mcp-Session-Id", e.cs.ID())
	stop := context.AfterFunc(ctx, func() { p.cancelOnSession(ctx, e, h, id) })
	raw, err := p.exchange(ctx, e, id, body, h, func(method string, rid, params json.RawMessage) {
		p.answerOnSession(ctx, e, h, method, rid, params)
	})
	stop()
	if err != nil {
		return nil, err
	}
	res := new(mcp.CallToolResult)
	if err := json.Unmarshal(raw, res); err != nil {
		return nil, fmt.Errorf("the upstream's result is malformed: %w", err)
	}
	return res, nil
}

// requestBody is the JSON-RPC request {id, method, params: {name,
// arguments, _meta}}, with args (canonical JSON, or nil for none) as they
// are.
func requestBody(id, method, name string, args json.RawMessage, meta mcp.Meta) ([]byte, error) {
	nameJSON, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	b := make([]byte, 0, 96+len(nameJSON)+len(args)+len(method))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"method":`...)
	b = strconv.AppendQuote(b, method)
	b = append(b, `,"params":{"name":`...)
	b = append(b, nameJSON...)
	b = append(b, `,"arguments":`...)
	b = append(b, args...)
	if len(meta) > 0 {
		m, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"_meta":`...)
		b = append(b, m...)
	}
	return append(b, "}}"...), nil
}

// cancelOnSession tells the upstream that the call id was given up (the
// client cancelled it, its time ran out, a kill switch or the stop cut
// it), as the SDK client does: over HTTP a closed response does not end a
// session's request.
func (p *Pool) cancelOnSession(ctx context.Context, e *pooled, h http.Header, id string) {
	reason, _ := json.Marshal(context.Cause(ctx).Error())
	body := []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + id + `,"reason":` + string(reason) + `}}`)
	go p.postOnSession(ctx, e, h, body)
}

// answerOnSession answers a request the upstream made on the response
// stream of a call: as the SDK client answers it, with the handlers that
// relay sampling and elicitation to the client of the call (askClient).
func (p *Pool) answerOnSession(ctx context.Context, e *pooled, h http.Header, method string, id, params json.RawMessage) {
	var res any
	var err error
	switch method {
	case "ping":
		res = struct{}{}
	case "roots/list":
		res = json.RawMessage(`{"roots":[]}`) // the SDK client's answer: Ostiary declares roots and has none
	case "sampling/createMessage":
		res, err = handleOn(ctx, e.sample, params)
	case "elicitation/create":
		res, err = handleOn(ctx, e.elicit, params)
	default:
		err = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
	}
	msg := map[string]any{"jsonrpc": "2.0", "id": id}
	if err != nil {
		rpcErr, ok := err.(*jsonrpc.Error)
		if !ok {
			rpcErr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		msg["error"] = rpcErr
	} else {
		msg["result"] = res
	}
	body, err := json.Marshal(msg)
	if err != nil {
		body, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the answer cannot be encoded"}})
	}
	p.postOnSession(ctx, e, h, body)
}

// handleOn decodes params and runs fn on them (nil: no handler, the
// request is refused as the SDK refuses it).
func handleOn[P, R any](ctx context.Context, fn func(context.Context, *P) (*R, error), params json.RawMessage) (*R, error) {
	if fn == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
	}
	v := new(P)
	if len(params) > 0 {
		if err := json.Unmarshal(params, v); err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid params"}
		}
	}
	return fn(ctx, v)
}

// postOnSession POSTs a notification or an answer on e's session (the
// injector adds the admin's headers and the identity assertion), bounded
// in time, whatever happened to the call's own context.
func (p *Pool) postOnSession(ctx context.Context, e *pooled, h http.Header, body []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := e.http.Do(req)
	if err != nil {
		p.cfg.Logger.Debug("upstream did not take a message on its session", "err", err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
