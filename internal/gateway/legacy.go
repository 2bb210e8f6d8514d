//lint:file-ignore SA1019 sampling is deprecated as of 2026-07-28 (SEP-2577) but a 2025 client may still declare it: a session whose client may be asked keeps the SDK's path.

package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/upstream"
)

// The hot path of the 2025 revisions. A tools/call on a session that
// needs nothing of the SDK's session machinery during the call is
// answered here, through the same govern.Pipeline.CallTool, with one
// application/json response (which the 2025 transports allow for any
// POST), instead of by the SDK's stateful handler, which decodes the
// message again (a 32 KiB buffer per decode) and answers on an event
// stream. "Nothing" is: no progress token, no task or continuation, a
// client that declared neither sampling nor elicitation at initialize
// (an upstream's question could not be put to it anyway) and set no log
// level (the SDK sends a session's log messages only once it has), and
// the headers as the SDK's handler would accept them (the negotiated
// Mcp-Protocol-Version, JSON content, an Accept of both kinds, no
// Last-Event-ID). Everything else, every malformed variant included,
// goes to the SDK. TestDirectLegacyCallMatchesSDK sends each outcome
// both ways and requires the same answer and the same audit records.
//
// The SDK closes a session after SessionIdle without a request: calls
// answered here do not reach its timer, so a call goes to the SDK when
// the SDK last finished a request of the session more than a quarter of
// SessionIdle ago, which keeps the timer from ever running out on a
// session in use.

// legacyVersions are the 2025 revisions a direct call may be of: those
// that require the Mcp-Protocol-Version header on every request.
var legacyVersions = map[string]bool{"2025-11-25": true, "2025-06-18": true}

// directLegacy reports whether a legacy request on the session bound can
// be answered by serveDirectLegacy.
func (g *Gateway) directLegacy(r *http.Request, m message, bound binding) bool {
	h := r.Header
	if m.method != "tools/call" || m.id == nil || builtinNames[m.toolName] || bound.ss == nil || bound.logs ||
		g.cfg.Now().Sub(bound.sdkDone) > g.cfg.SessionIdle/4 ||
		len(h.Values("Last-Event-ID")) > 0 || !jsonContent(h.Get("Content-Type")) || !acceptsBoth(h.Values("Accept")) || !rebindingSafe(r) {
		return false
	}
	for _, k := range []string{"task", "inputResponses", "requestState"} {
		if _, ok := m.params[k]; ok {
			return false
		}
	}
	if a, ok := m.params["arguments"]; ok && a != nil {
		if _, isObject := a.(map[string]any); !isObject {
			return false // the SDK path words the refusal
		}
	}
	if _, ok := m.meta["progressToken"]; ok {
		return false // wants a stream
	}
	if _, ok := m.params["_meta"]; ok && m.meta == nil {
		return false // not an object: the SDK refuses
	}
	init := bound.ss.InitializeParams()
	if init == nil || !legacyVersions[init.ProtocolVersion] || h.Get("Mcp-Protocol-Version") != init.ProtocolVersion {
		return false
	}
	caps := init.Capabilities
	return caps == nil || (caps.Sampling == nil && caps.Elicitation == nil)
}

// serveDirectLegacy answers a request directLegacy accepted: the JSON-RPC
// response the SDK would send, in a 200 as the SDK sends every answer of
// a session's call, errors included.
func (g *Gateway) serveDirectLegacy(w http.ResponseWriter, r *http.Request, p *authn.Principal, m message) {
	tr := govern.ToolRequest{Name: m.toolName}
	if m.args != nil {
		tr.Args, tr.ArgErr = govern.CanonicalArgs(m.args)
	} else {
		tr.Args, tr.ArgErr = govern.ParseArgs(nil)
	}
	relay := &upstream.Relay{Ctx: r.Context(), RequestID: p.RequestID}
	res, enc, err := g.pl.CallToolJSON(r.Context(), p, tr, relay)
	var body []byte
	if err == nil {
		body, err = legacyResult(m.id, res, enc)
	}
	w.Header().Set("Cache-Control", "no-cache, no-transform")
	if err != nil {
		rpcErr, _ := rpcError(err)
		writeRPCError(w, http.StatusOK, m.id, rpcErr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// legacyResult is the JSON-RPC response carrying res, whose encoding
// enc is, if the outcome stage made it.
func legacyResult(id any, res any, enc json.RawMessage) ([]byte, error) {
	if enc == nil {
		b, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		enc = b
	}
	idJSON, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(enc)+len(idJSON)+32)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, idJSON...)
	out = append(out, `,"result":`...)
	out = append(out, enc...)
	return append(out, '}'), nil
}
