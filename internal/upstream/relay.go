//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still in its deprecation window, and 2025-era clients rely on it: it is relayed on purpose.

package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// Relay says where the notifications of one upstream call go: the inbound
// session and request that made it, and the client's own progress token.
type Relay struct {
	Session       *mcp.ServerSession
	Ctx           context.Context // the inbound request's context
	ProgressToken any             // nil if the client asked for no progress
	RequestID     string          // the inbound request's correlation id
	Modern        bool            // a 2026-07-28 client: it takes no requests (it is asked through input_required results)
	// Ask, for a 2026-07-28 client, puts an upstream's request to it as an
	// input_required result and returns its answer (JSON).
	Ask func(ctx context.Context, method string, params any) (json.RawMessage, error)
	// Admit, for a 2026-07-28 client, says whether it may be asked method
	// now; a refusal is a *Refusal, recorded with its reason.
	Admit func(method string) error
	// Gate decides whether the upstream may ask the client anything
	// during the call (govern.go); the zero Gate refuses.
	Gate Gate

	mu       sync.Mutex
	injected vault.Known    // secrets injected for this call: never relayed back
	matcher  *vault.Matcher // injected, compiled (nil until needed, and after know)
	found    vault.Found    // what was redacted from what the call relayed
}

// know adds injected secrets to those redacted from what the call relays.
func (r *Relay) know(k vault.Known) {
	if len(k) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.injected == nil {
		r.injected = vault.Known{}
	}
	for n, v := range k {
		if old, ok := r.injected[n]; !ok || old.Version != v.Version || string(old.Value) != string(v.Value) {
			r.injected[n] = v
			r.matcher = nil
		}
	}
}

// compiled returns the matcher of r's injected secrets (nil if none, which
// finds nothing); r.mu is held.
func (r *Relay) compiled() *vault.Matcher {
	if len(r.injected) == 0 {
		return nil
	}
	if r.matcher == nil {
		r.matcher = r.injected.Matcher()
		if r.found == nil {
			r.found = vault.Found{}
		}
	}
	return r.matcher
}

// Redact removes injected secrets (in every encoding vault covers) and
// credential shapes from the text b, noting what it removed.
func (r *Relay) Redact(b []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.compiled().Redact(b, r.found)
}

// RedactJSON is Redact for a JSON document (see vault.Matcher.RedactJSON);
// b is redacted as a text if it is not JSON.
func (r *Relay) RedactJSON(b []byte) []byte {
	if !json.Valid(b) {
		return r.Redact(b)
	}
	r.mu.Lock()
	red, err := r.compiled().RedactJSON(b, r.found)
	r.mu.Unlock()
	if err != nil {
		return r.Redact(b)
	}
	return red
}

// Redactions lists what r redacted so far, by secret name and version, for
// the record of the call.
func (r *Relay) Redactions() []vault.Redaction {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.injected.Redactions(r.found)
}

// RedactValue returns v with r's injected secrets and credential shapes
// removed, on its decoded JSON (RedactJSON): v itself if nothing changed,
// else a fresh value of its type.
func RedactValue[T any](r *Relay, v *T) (*T, error) {
	out, _, err := RedactEncoded(r, v)
	return out, err
}

// RedactEncoded is RedactValue that also returns the JSON encoding of
// what it returns (made once: redaction works on it).
func RedactEncoded[T any](r *Relay, v *T) (*T, []byte, error) {
	if v == nil {
		return nil, nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	red, err := r.compiled().RedactJSON(b, r.found)
	r.mu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("redacting the upstream's answer: %w", err)
	}
	if bytes.Equal(red, b) {
		return v, b, nil
	}
	out := new(T)
	if err := json.Unmarshal(red, out); err != nil {
		return nil, nil, fmt.Errorf("redacting the upstream's answer: %w", err)
	}
	if b, err = json.Marshal(out); err != nil {
		return nil, nil, err
	}
	return out, b, nil
}

func (e *pooled) track(token string, r *Relay) func() {
	e.mu.Lock()
	e.inflight[token] = r
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.inflight, token)
		e.mu.Unlock()
	}
}

// progress relays an upstream progress notification to the one inbound
// request it belongs to, under that client's own token.
func (e *pooled) progress(ctx context.Context, req *mcp.ProgressNotificationClientRequest) {
	tok, _ := req.Params.ProgressToken.(string)
	e.mu.Lock()
	r := e.inflight[tok]
	e.mu.Unlock()
	if r == nil || r.ProgressToken == nil || r.Session == nil {
		return
	}
	r.know(e.injected)
	r.Session.NotifyProgress(r.Ctx, &mcp.ProgressNotificationParams{ProgressToken: r.ProgressToken,
		Progress: req.Params.Progress, Total: req.Params.Total, Message: string(r.Redact([]byte(req.Params.Message)))})
}

// logMessage relays an upstream log message to the requests in flight on
// this session. Sessions belong to one user, so a message never reaches
// another user's client.
func (e *pooled) logMessage(ctx context.Context, req *mcp.LoggingMessageRequest) {
	e.mu.Lock()
	targets := make([]*Relay, 0, len(e.inflight))
	for _, r := range e.inflight {
		targets = append(targets, r)
	}
	e.mu.Unlock()
	raw, err := json.Marshal(req.Params)
	if err != nil {
		return
	}
	for _, r := range targets {
		r.know(e.injected)
		r.log(raw)
	}
}

// relayTo installs the handlers that route an upstream session's
// notifications to the inbound requests in flight on it. Over HTTP,
// notifications on a call's own response stream are relayed exactly by
// streamRelay instead, so these handlers serve stdio upstreams only.
func (e *pooled) relayTo(opts *mcp.ClientOptions) {
	opts.ProgressNotificationHandler = e.progress
	opts.LoggingMessageHandler = e.logMessage
}

// EventUpstreamRequest is the audit event of a request an upstream makes of
// the user's client (sampling, elicitation), relayed or refused.
const EventUpstreamRequest = "upstream-request"

// askClient installs the handlers that relay an upstream's requests of the
// client (sampling, elicitation) to the one client whose call is in flight
// on this session. With no call, or several, in flight the request is
// refused: it is never guessed onto a client. Each is audited first.
func (e *pooled) askClient(p *Pool, c Caller, u spec.Upstream, opts *mcp.ClientOptions) {
	e.sample = func(ctx context.Context, req *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
		r, err := e.sole(ctx, p, c, u, "sampling/createMessage", req)
		if err != nil {
			return nil, err
		}
		params, err := RedactValue(r, req) // an upstream may quote what it was sent
		if err != nil {
			return nil, err
		}
		if r.Modern {
			return answer[mcp.CreateMessageResult](r.Ask(ctx, "sampling/createMessage", params))
		}
		return r.Session.CreateMessage(r.Ctx, params)
	}
	e.elicit = func(ctx context.Context, req *mcp.ElicitParams) (*mcp.ElicitResult, error) {
		r, err := e.sole(ctx, p, c, u, "elicitation/create", req)
		if err != nil {
			return nil, err
		}
		params, err := RedactValue(r, req)
		if err != nil {
			return nil, err
		}
		if r.Modern {
			return answer[mcp.ElicitResult](r.Ask(ctx, "elicitation/create", params))
		}
		return r.Session.Elicit(r.Ctx, params)
	}
	opts.CreateMessageHandler = func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
		return e.sample(ctx, req.Params)
	}
	opts.ElicitationHandler = func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return e.elicit(ctx, req.Params)
	}
}

// RelayedCapabilities are the client capabilities Ostiary declares to its
// upstreams, on the catalog's sync session and on the users' call sessions
// alike: sampling and elicitation (form and URL modes), which askClient
// relays to the user's client (whose SDK session refuses a mode that
// client did not declare), and roots with list-changed, as the SDK has
// always declared them. The sync session installs no handlers: an upstream
// that asks it anything is refused (the SDK's answer to a request with no
// handler); it declares them so that a server registering tools only for
// clients that can answer (server-everything's trigger-elicitation-request)
// lists them, and the catalog holds what users will be offered.
func RelayedCapabilities() *mcp.ClientCapabilities {
	return &mcp.ClientCapabilities{
		RootsV2:     &mcp.RootCapabilities{ListChanged: true},
		Sampling:    &mcp.SamplingCapabilities{},
		Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}},
	}
}

// Refusal is a request the client is not asked, with the reason on record.
type Refusal struct{ Reason, Message string }

func (r *Refusal) Error() string { return r.Message }

// Capability is the client capability that being asked method needs
// ("" for a method no client is asked).
func Capability(method string) string {
	return map[string]string{"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}[method]
}

// Declares reports whether a 2026-07-28 client's declared capabilities
// cover being asked method.
func Declares(caps json.RawMessage, method string) bool {
	need := Capability(method)
	var declared map[string]json.RawMessage
	if need == "" || json.Unmarshal(caps, &declared) != nil {
		return false
	}
	v, ok := declared[need]
	return ok && string(v) != "null"
}

// answer decodes a 2026-07-28 client's answer to an upstream's request.
func answer[T any](raw json.RawMessage, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("the client's answer is malformed: %w", err)
	}
	return v, nil
}

// sole returns the one call in flight to relay an upstream request to, and
// records the relay (or the refusal). The call's Gate decides first: a
// request its tool's labels do not allow is refused with a JSON-RPC error
// (not an answer on the user's behalf, such as "decline": the user was not
// asked), and the client never sees it.
func (e *pooled) sole(ctx context.Context, p *Pool, c Caller, u spec.Upstream, method string, params any) (*Relay, error) {
	e.mu.Lock()
	var only *Relay
	n := len(e.inflight)
	for _, r := range e.inflight {
		only = r
	}
	e.mu.Unlock()
	rec := audit.Record{Event: EventUpstreamRequest, Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID,
		Target: "upstream:" + u.Name, Detail: map[string]any{"method": method, "calls_in_flight": n}}
	var refusal error
	switch {
	case n != 1:
		q, _ := Gate{}.Judge(method, params) // for the record only
		q.Detail(rec.Detail)
		refusal = &Refusal{Reason: "no-single-call-in-flight", Message: method + " refused: it can only be relayed during exactly one call of this user"}
	default:
		rec.RequestID = only.RequestID
		refusal = only.admit(rec.Detail, method, params)
	}
	if refusal != nil {
		rec.Outcome, rec.Reason = audit.Denied, "client-not-asked"
		var r *Refusal
		if errors.As(refusal, &r) {
			rec.Reason = r.Reason
		}
	}
	if _, err := p.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
		return nil, fmt.Errorf("%s refused: the audit log is unavailable", method)
	}
	if refusal != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: refusal.Error()}
	}
	return only, nil
}

// admit decides whether r's client may be asked method: its Gate, then
// whether the client can be asked at all, and, for a 2026-07-28 client,
// its Admit. It notes on d what was asked (kind, mode, URL host, tool).
func (r *Relay) admit(d map[string]any, method string, params any) error {
	q, refusal := r.Gate.Judge(method, params)
	q.Detail(d)
	if r.Gate.Tool != "" {
		d["tool"] = r.Gate.Tool
	}
	switch {
	case refusal != nil:
		return refusal
	case r.Modern && r.Ask == nil, !r.Modern && r.Session == nil:
		return &Refusal{Reason: "client-takes-no-requests", Message: method + " refused: the client cannot be asked"}
	case r.Modern:
		// A 2026-07-28 client takes no requests: it is asked with an
		// input_required result and answers in its next call.
		d["via"] = "input_required"
		if r.Admit != nil {
			return r.Admit(method)
		}
	}
	return nil
}

// log relays one upstream log message (raw params, redacted) to this
// call's client.
func (r *Relay) log(params json.RawMessage) {
	var p mcp.LoggingMessageParams
	if r.Session != nil && json.Unmarshal(r.RedactJSON(params), &p) == nil {
		r.Session.Log(r.Ctx, &p)
	}
}

// takeLogs asks the upstream for all its log messages: servers send none
// until a level is set, and each client's own level filters what it gets.
func (p *Pool) takeLogs(ctx context.Context, cs *mcp.ClientSession, u spec.Upstream) {
	init := cs.InitializeResult()
	if init == nil || init.Capabilities == nil || init.Capabilities.Logging == nil {
		return
	}
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		p.cfg.Logger.Debug("upstream refused a logging level", "upstream", u.Name, "err", err)
	}
}
