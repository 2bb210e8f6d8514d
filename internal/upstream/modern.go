package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// modernVersion is the protocol revision spoken per request.
const modernVersion = "2026-07-28"

// modern reports whether a session negotiated 2026-07-28 (or later).
func modern(cs *mcp.ClientSession) bool {
	r := cs.InitializeResult()
	return r != nil && r.ProtocolVersion >= modernVersion
}

// callModern makes one 2026-07-28 tools/call on e's HTTP upstream. The
// result is the upstream's own, input_required ones included.
func (p *Pool) callModern(ctx context.Context, e *pooled, call ToolCall, meta mcp.Meta) (*mcp.CallToolResult, error) {
	params := map[string]any{"name": call.Name, "arguments": json.RawMessage("{}")}
	if call.Arguments != nil {
		params["arguments"] = call.Arguments
	}
	raw, err := p.modernRequest(ctx, e, "tools/call", call.Name, params, call.Continuation, meta, paramHeaderValues(call.ParamHeaders, call.Args))
	if err != nil {
		return nil, err
	}
	res := new(mcp.CallToolResult)
	if err := json.Unmarshal(raw, res); err != nil {
		return nil, fmt.Errorf("the upstream's result is malformed: %w", err)
	}
	return res, nil
}

// Continuation is what a 2026-07-28 client brings to a request: its
// declared capabilities (nil: an earlier client), and its answers to an
// input_required result with the upstream's requestState.
type Continuation struct {
	Capabilities   json.RawMessage
	InputResponses json.RawMessage
	RequestState   string
}

// modern reports whether the request comes from a 2026-07-28 client.
func (c Continuation) modern() bool { return c.Capabilities != nil }

// continues reports whether the request answers an input_required result.
func (c Continuation) continues() bool { return c.InputResponses != nil || c.RequestState != "" }

// errNotContinuable refuses a continuation the upstream cannot take.
var errNotContinuable = &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "this request cannot be continued: the upstream no longer speaks 2026-07-28"}

var callIDs atomic.Int64

// modernRequest makes one 2026-07-28 request on e's HTTP upstream, with
// the per-request _meta triple (the client's capabilities declared as
// Ostiary's) and the client's continuation, and reads its answer: a JSON
// body, or an event stream whose notifications the injector relays while
// the response to this request is looked for. It returns the result
// object as sent.
func (p *Pool) modernRequest(ctx context.Context, e *pooled, method, name string, params map[string]any, cont Continuation, meta mcp.Meta,
	headers map[string]string) (json.RawMessage, error) {
	id := callIDs.Add(1)
	m := map[string]any{}
	for k, v := range meta {
		m[k] = v
	}
	m["io.modelcontextprotocol/protocolVersion"] = modernVersion
	m["io.modelcontextprotocol/clientInfo"] = map[string]string{"name": "ostiary", "version": p.cfg.Version}
	m["io.modelcontextprotocol/clientCapabilities"] = cont.Capabilities
	params["_meta"] = m
	if cont.InputResponses != nil {
		params["inputResponses"] = cont.InputResponses
	}
	if cont.RequestState != "" {
		params["requestState"] = cont.RequestState
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Mcp-Protocol-Version", modernVersion)
	h.Set("Mcp-Method", method)
	h.Set("Mcp-Name", name)
	for k, v := range headers {
		h.Set(k, v)
	}
	return p.exchange(ctx, e, strconv.FormatInt(id, 10), body, h, nil)
}

// exchange POSTs one JSON-RPC request (body, whose id is the JSON text
// id) to e's HTTP upstream with the headers h besides the transport's own,
// and reads its answer: a JSON body, or an event stream whose
// notifications the injector relays and whose requests (of a session-based
// upstream) onRequest answers, while the response to this request is
// looked for. It returns the result object as sent.
func (p *Pool) exchange(ctx context.Context, e *pooled, id string, body []byte, h http.Header, onRequest func(method string, id, params json.RawMessage)) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	var msg []byte
	switch strings.TrimSpace(strings.ToLower(ct)) {
	case "application/json":
		if msg, err = io.ReadAll(resp.Body); err != nil {
			return nil, err
		}
	case "text/event-stream":
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
		}
		if msg, err = responseEvent(resp.Body, id, int(p.cfg.MaxResponse), onRequest); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("upstream answered HTTP %d (%q)", resp.StatusCode, clipText(ct)) // quoted: its text is the upstream's (failureClass)
	}
	res, err := decodeResponse(msg, id)
	if err != nil && !answeredErr(err) && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
	}
	return res, err
}

// responseEvent reads server-sent events until the one carrying the
// response to request id; a line may be as long as the whole response.
func responseEvent(r io.Reader, id string, maxLine int, onRequest func(method string, id, params json.RawMessage)) ([]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine+1)
	var data []string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if v, ok := strings.CutPrefix(line, "data:"); ok {
			data = append(data, strings.TrimPrefix(v, " "))
			continue
		}
		if line != "" || len(data) == 0 {
			continue
		}
		ev := []byte(strings.Join(data, "\n"))
		data = data[:0]
		var head struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(ev, &head) != nil {
			continue
		}
		if head.Method == "" && string(head.ID) == id {
			return ev, nil
		}
		if head.Method != "" && head.ID != nil && onRequest != nil {
			onRequest(head.Method, head.ID, head.Params)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("the upstream's event stream ended without an answer")
}

// decodeResponse checks a JSON-RPC response to request id and returns its
// result object, or its error as a *jsonrpc.Error (an answer).
func decodeResponse(msg []byte, id string) (json.RawMessage, error) {
	var r struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   *jsonrpc.Error  `json:"error"`
	}
	if err := json.Unmarshal(msg, &r); err != nil {
		return nil, fmt.Errorf("the upstream's answer is not JSON-RPC: %w", err)
	}
	if r.JSONRPC != "2.0" || string(r.ID) != id {
		return nil, errors.New("the upstream's answer is not the response to the call")
	}
	if r.Error != nil {
		return nil, r.Error
	}
	if len(r.Result) == 0 || r.Result[0] != '{' {
		return nil, errors.New("the upstream's answer carries no result")
	}
	return r.Result, nil
}

func answeredErr(err error) bool {
	var rpcErr *jsonrpc.Error
	return errors.As(err, &rpcErr)
}

func clipText(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "?")
}

// paramHeaderValues are the Mcp-Param-* headers mirroring args, encoded as
// SEP-2243 says: strings as they are (base64 in =?base64?…?= if not plain
// visible ASCII), booleans, and integers within ±(2^53−1).
func paramHeaderValues(bindings []spec.ParamHeader, args map[string]any) map[string]string {
	if len(bindings) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, b := range bindings {
		v, ok := ArgAt(args, b.Path)
		if !ok {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
			if needsBase64(s) {
				s = "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
			}
		case bool:
			s = strconv.FormatBool(v)
		case json.Number:
			f, err := v.Float64()
			if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53-1 {
				continue
			}
			s = strconv.FormatInt(int64(f), 10)
		default:
			continue
		}
		out[b.Header] = s
	}
	return out
}

// ArgAt is the argument at a property path; false if it is absent or null.
func ArgAt(args map[string]any, path []string) (any, bool) {
	var cur any = args
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

func needsBase64(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t' {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return true
		}
	}
	return strings.HasPrefix(s, "=?base64?") && strings.HasSuffix(s, "?=")
}
