//lint:file-ignore SA1019 roots are deprecated as of 2026-07-28 (SEP-2577) but a client may still declare them; the capabilities are checked as the SDK checks them.

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/upstream"
)

// The hot path. A 2026-07-28 tools/call is one self-contained POST: the
// front door has already parsed it strictly, authenticated its sender and
// checked its headers, so when it asks for nothing that needs the SDK's
// server machinery (a progress or log stream, a task) it is answered
// here, through the same callTool as every other call, with one
// application/json response.
// Anything else, including every malformed variant, goes to the SDK, which
// gives the protocol's own answers. Both paths produce the same JSON-RPC
// response (TestDirectCallMatchesSDK).

// modernVersion is the protocol revision served statelessly.
const modernVersion = "2026-07-28"

// builtinNames are answered by the SDK path (they are not on the hot path).
var builtinNames = map[string]bool{"discover_tools": true, "approval_status": true}

// direct reports whether a request can be answered by serveDirect, and
// what the client brings to the call: its capabilities and any answers,
// encoded once.
func direct(h http.Header, m message) (client upstream.Continuation, ok bool) {
	if m.method != "tools/call" || m.id == nil || builtinNames[m.toolName] ||
		h.Get("Mcp-Protocol-Version") != modernVersion || h.Get("Mcp-Method") != "tools/call" || h.Get("Mcp-Name") != m.toolName ||
		len(h.Values("Last-Event-ID")) > 0 || !jsonContent(h.Get("Content-Type")) || !acceptsBoth(h.Values("Accept")) {
		return client, false
	}
	if _, ok := m.params["task"]; ok {
		return client, false
	}
	if v, present := m.params["inputResponses"]; present {
		if _, isObject := v.(map[string]any); !isObject {
			return client, false // the SDK words the refusal
		}
		if client.InputResponses, ok = encodes(v, &mcp.InputResponseMap{}); !ok {
			return client, false
		}
	}
	if v, present := m.params["requestState"]; present {
		if client.RequestState, ok = v.(string); !ok {
			return client, false
		}
	}
	if a, ok := m.params["arguments"]; ok && a != nil {
		if _, isObject := a.(map[string]any); !isObject {
			return client, false // the SDK path words the refusal
		}
	}
	if m.meta[metaProtocolVersion] != modernVersion {
		return client, false
	}
	for k := range m.meta {
		switch k {
		case "progressToken", "io.modelcontextprotocol/logLevel":
			return client, false // wants a stream
		}
	}
	caps, isObject := m.meta[metaCapabilities].(map[string]any)
	if !isObject {
		return client, false // absent or malformed: the SDK refuses
	}
	if client.Capabilities, ok = encodes(caps, &struct {
		mcp.ClientCapabilities
		Roots *mcp.RootCapabilities `json:"roots,omitempty"`
	}{}); !ok {
		return client, false
	}
	if info, present := m.meta["io.modelcontextprotocol/clientInfo"]; present {
		if _, ok := encodes(info, &mcp.Implementation{}); !ok {
			return client, false
		}
	}
	return client, true
}

// rebindingSafe is the SDK's DNS-rebinding check, which the direct path
// must not skip: a server listening on loopback answers only requests
// addressed to a loopback host (the SDK refuses the others with 403).
func rebindingSafe(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return !ok || local == nil || !loopback(local.String()) || loopback(r.Host)
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// encodes returns v as JSON, and whether that decodes into into.
func encodes(v any, into any) (json.RawMessage, bool) {
	b, err := json.Marshal(v)
	return b, err == nil && json.Unmarshal(b, into) == nil
}

func jsonContent(ct string) bool {
	if ct == "application/json" {
		return true
	}
	t, _, err := mime.ParseMediaType(ct)
	return err == nil && t == "application/json"
}

// acceptsBoth is the SDK's test of a streamable HTTP Accept header.
func acceptsBoth(values []string) bool {
	var jsonOK, streamOK bool
	for _, v := range values {
		for _, raw := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(strings.TrimSpace(raw), ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK && streamOK
}

// serveDirect answers a request direct accepted, with what direct
// encoded of it.
func (g *Gateway) serveDirect(w http.ResponseWriter, r *http.Request, p *authn.Principal, m message, client upstream.Continuation, snap *catalog.Snapshot) {
	tr := govern.ToolRequest{Name: m.toolName, Client: client, Snapshot: snap}
	if m.args != nil {
		tr.Args, tr.ArgErr = govern.CanonicalArgs(m.args)
	} else {
		tr.Args, tr.ArgErr = govern.ParseArgs(nil)
	}
	relay := &upstream.Relay{Ctx: r.Context(), RequestID: p.RequestID, Modern: true}
	res, enc, err := g.pl.CallToolJSON(r.Context(), p, tr, relay)
	var body []byte
	if err == nil {
		if body, err = g.encodedMessage(m.id, enc); body == nil && err == nil {
			g.answeredBy(res)
			body, err = resultMessage(m.id, res)
		}
	}
	w.Header().Set("Cache-Control", "no-cache, no-transform")
	if err != nil {
		rpcErr, status := rpcError(err)
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		writeRPCError(w, status, m.id, rpcErr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// resultMessage is the JSON-RPC response carrying res, marked complete
// (2026-07-28 requires a resultType) unless it says otherwise.
func resultMessage(id any, res mcp.Result) ([]byte, error) {
	idJSON, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[0] != '{' {
		return nil, errors.New("gateway: a result must be an object")
	}
	out := make([]byte, 0, len(b)+len(idJSON)+64)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, idJSON...)
	out = append(out, `,"result":`...)
	if hasResultType(b) {
		out = append(out, b...)
	} else {
		out = append(out, `{"resultType":"complete"`...)
		if b[1] != '}' {
			out = append(out, ',')
		}
		out = append(out, b[1:]...)
	}
	return append(out, '}'), nil
}

// encodedMessage is resultMessage for a result already encoded (enc, as
// the outcome stage encoded it), answered by Ostiary: nil if enc is nil
// or carries a _meta or resultType of its own anywhere (then the result
// is encoded again, its _meta rewritten).
func (g *Gateway) encodedMessage(id any, enc []byte) ([]byte, error) {
	if len(enc) < 2 || enc[0] != '{' || bytes.Contains(enc, []byte(`"_meta"`)) || bytes.Contains(enc, []byte(`"resultType"`)) {
		return nil, nil
	}
	idJSON, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(enc)+len(idJSON)+len(g.answeredMeta)+64)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, idJSON...)
	out = append(out, `,"result":{"resultType":"complete",`...)
	out = append(out, g.answeredMeta...)
	if enc[1] != '}' {
		out = append(out, ',')
	}
	out = append(out, enc[1:]...)
	return append(out, '}'), nil
}

// hasResultType reports whether the JSON object b has a top-level
// resultType member.
func hasResultType(b []byte) bool {
	if !bytes.Contains(b, []byte(`"resultType"`)) {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return false
	}
	_, ok := top["resultType"]
	return ok
}

// rpcError is err as the SDK codes a handler's error, with the HTTP
// status 2026-07-28 gives its code.
func rpcError(err error) (*jsonrpc.Error, int) {
	if err == govern.ErrAudit || err == govern.ErrAuditRan {
		return err.(*jsonrpc.Error), http.StatusServiceUnavailable
	}
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) {
		rpcErr = &jsonrpc.Error{Message: err.Error()}
	} else if rpcErr != err {
		rpcErr = &jsonrpc.Error{Code: rpcErr.Code, Message: err.Error()}
	}
	switch rpcErr.Code {
	case jsonrpc.CodeMethodNotFound:
		return rpcErr, http.StatusNotFound
	case jsonrpc.CodeInvalidParams, mcp.CodeUnsupportedProtocolVersion, mcp.CodeMissingRequiredClientCapabilities:
		return rpcErr, http.StatusBadRequest
	}
	return rpcErr, http.StatusOK
}
