// Package upstream connects Ostiary to the MCP servers behind it, as an
// admin configured them (spec.Upstream): a Pool holds one client session
// per (user, upstream), never shared between users, each request carrying
// a fresh identity assertion instead of any client credential.
package upstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// Caller is who an upstream request is for.
type Caller struct {
	User        string
	Roles       []string
	KeyID       string
	Environment string // the key's: picks the secret values injected, and the session
	Service     bool
	RequestID   string // correlation id, propagated as X-Request-ID and in the assertion
	Traceparent string // W3C trace context, propagated as is
	// Legacy: the client speaks a 2025 revision. Its session to the
	// upstream is negotiated in that era too, so that an upstream serving
	// both eras delivers what only its 2025 era has (log notifications,
	// sampling and elicitation on the session) to the client that expects
	// them. 2026-07-28 clients keep sessions negotiated at the latest.
	Legacy bool
}

// legacyVersion is what a legacy caller's upstream session asks for.
const legacyVersion = "2025-11-25"

// env is the caller's environment, the default if none is set.
func (c Caller) env() string {
	if c.Environment == "" {
		return authn.DefaultEnvironment
	}
	return c.Environment
}

// CallerOf returns the Caller for a principal.
func CallerOf(p *authn.Principal) Caller {
	return Caller{User: p.User, Roles: p.Roles, KeyID: p.KeyID, Environment: p.Environment, Service: p.Service, RequestID: p.RequestID, Traceparent: p.Traceparent, Legacy: p.Legacy}
}

// System is the caller Ostiary itself uses to list an upstream's tools.
var System = Caller{User: "ostiary", Roles: []string{}, Service: true}

type callerKey struct{}

// WithCaller attaches the caller of one upstream request to ctx.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// EventSpawn is the audit event of a stdio upstream process start.
const EventSpawn = "upstream-spawn"

// PoolConfig configures a Pool; Signer, Auditor, Logger and Now are required.
type PoolConfig struct {
	Signer          Signer
	Auditor         audit.Appender
	Logger          *slog.Logger
	Now             func() time.Time
	Transport       http.RoundTripper // default: per upstream, a pooled transport with the SSRF guard
	IdleAfter       time.Duration     // close a session unused this long; default 5m
	MaxResponse     int64             // bytes an upstream may send in one HTTP response; default 16 MiB
	MaxConcurrent   int               // calls in flight per upstream; default 64
	BreakerCooldown time.Duration     // how long a failing upstream's circuit stays open; default 30s
	Version         string            // reported to upstreams as the client version
	// Secrets resolves ${secret:NAME} in header and environment values;
	// without it, an upstream that refers to a secret cannot be reached.
	Secrets Resolver
	// StdioAllow is the operator's list of the programs stdio upstreams
	// may run; nil allows none.
	StdioAllow *spec.StdioAllow
}

// Resolver returns a secret's value (and its version) for injection into
// an upstream, having recorded the access (rec carries who it is for).
type Resolver interface {
	Resolve(ctx context.Context, name, upstream, env string, rec audit.Record) (vault.Injected, error)
}

// resolve expands the secret references in value for c and u, noting what
// it injected in known.
func (p *Pool) resolve(ctx context.Context, c Caller, u spec.Upstream, value string, known vault.Known) (string, error) {
	if !vault.RefRE.MatchString(value) {
		return value, nil
	}
	if p.cfg.Secrets == nil {
		return "", &refusedError{fmt.Errorf("upstream %s refers to a secret but no vault is open", u.Name)}
	}
	rec := audit.Record{Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID}
	out, err := vault.Expand(value, func(name string) ([]byte, error) {
		v, err := p.cfg.Secrets.Resolve(ctx, name, u.Name, c.env(), rec)
		if err == nil && known != nil {
			known[name] = v
		}
		return v.Value, err
	})
	if err != nil {
		return "", &refusedError{err}
	}
	return out, nil
}

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

// Pool holds the client sessions to upstreams: one per (user, environment,
// upstream), since a stdio process holds the secret values of the
// environment it was started for.
type Pool struct {
	cfg         PoolConfig
	transports  sync.Map // upstream name + policy → *http.Transport
	sessionless sync.Map // upstream name → its CreatedAt: answers 2025 initialize without a session
	breakers    sync.Map // upstream name → *breaker
	slots       sync.Map // upstream name → chan struct{} (concurrency limit)
	mu          sync.Mutex
	sessions    map[poolKey]*pooled
	closed      bool
	stop        chan struct{}
	done        chan struct{}
}

type poolKey struct {
	user, env, upstream string
	legacy              bool
}

type pooled struct {
	ready    chan struct{} // closed once cs or err is set
	cs       *mcp.ClientSession
	http     *http.Client // the session's HTTP client (HTTP upstreams)
	endpoint string
	err      error
	lastUsed time.Time
	created  time.Time // the upstream's CreatedAt when connected: a re-added upstream gets new sessions

	mu       sync.Mutex
	inflight map[string]*Relay // by outbound progress token
	busy     atomic.Int32      // requests using the session now: never reaped while > 0
	injected vault.Known       // secrets a stdio process was started with
}

// NewPool returns a Pool and starts its reaper.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Signer == nil || cfg.Auditor == nil || cfg.Logger == nil || cfg.Now == nil {
		return nil, errors.New("upstream: pool needs a signer, an auditor, a logger and a clock")
	}

	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = 5 * time.Minute
	}
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = 16 << 20
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = breakerCooldown
	}
	p := &Pool{cfg: cfg, sessions: map[poolKey]*pooled{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.reap()
	return p, nil
}

// Session returns the caller's session to u, connecting if needed.
func (p *Pool) Session(ctx context.Context, c Caller, u spec.Upstream) (*mcp.ClientSession, error) {
	e, err := p.entry(ctx, c, u)
	if err != nil {
		return nil, err
	}
	return e.cs, nil
}

func (p *Pool) entry(ctx context.Context, c Caller, u spec.Upstream) (*pooled, error) {
	k := poolKey{c.User, c.env(), u.Name, p.eraMatched(c, u)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("upstream pool closed")
	}
	e, ok := p.sessions[k]
	if ok && !e.created.Equal(u.CreatedAt) {
		delete(p.sessions, k)
		go closeWhenReady(e)
		ok = false
	}
	if !ok {
		e = &pooled{ready: make(chan struct{}), created: u.CreatedAt, inflight: map[string]*Relay{}}
		p.sessions[k] = e
		p.mu.Unlock()
		e.cs, e.err = p.connect(context.Background(), c, u, e)
		close(e.ready)
		p.mu.Lock()
		if e.err != nil && p.sessions[k] == e {
			delete(p.sessions, k) // do not cache failures
		}
	}
	e.lastUsed = p.cfg.Now()
	e.busy.Add(1)
	p.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		e.busy.Add(-1)
		return nil, ctx.Err()
	}
	if e.err != nil {
		e.busy.Add(-1)
	}
	return e, e.err
}

// release marks the end of a request that entry returned e for.
func (p *Pool) release(e *pooled) {
	p.mu.Lock()
	e.lastUsed = p.cfg.Now()
	p.mu.Unlock()
	e.busy.Add(-1)
}

func closeWhenReady(e *pooled) {
	<-e.ready
	if e.cs != nil {
		e.cs.Close()
	}
}

// eraMatched reports whether c's session to u is negotiated in c's own
// (2025) era: for legacy callers of HTTP upstreams that hold sessions in
// that era. Stdio sessions carry everything either way.
func (p *Pool) eraMatched(c Caller, u spec.Upstream) bool {
	if !c.Legacy || u.Kind != spec.HTTP {
		return false
	}
	created, ok := p.sessionless.Load(u.Name)
	return !ok || !created.(time.Time).Equal(u.CreatedAt)
}

// Drop closes and forgets the caller's session to u (after a transport
// failure, so the next call reconnects).
func (p *Pool) Drop(c Caller, upstreamName string) {
	p.mu.Lock()
	var gone []*pooled
	for _, legacy := range []bool{false, true} { // whichever era the session was of
		k := poolKey{c.User, c.env(), upstreamName, legacy}
		if e, ok := p.sessions[k]; ok {
			gone = append(gone, e)
			delete(p.sessions, k)
		}
	}
	p.mu.Unlock()
	for _, e := range gone {
		go closeWhenReady(e)
	}
}

// Forget closes every user's session to the named upstream (stdio
// processes end), and drops its transports (and their idle connections),
// circuit breaker and concurrency slots: an upstream an admin removed
// keeps nothing open. Calls still running on it are cut.
func (p *Pool) Forget(upstreamName string) {
	p.mu.Lock()
	var gone []*pooled
	for k, e := range p.sessions {
		if k.upstream == upstreamName {
			gone = append(gone, e)
			delete(p.sessions, k)
		}
	}
	p.mu.Unlock()
	for _, e := range gone {
		go closeWhenReady(e)
	}
	p.transports.Range(func(k, t any) bool {
		if strings.HasPrefix(k.(string), upstreamName+"/") {
			p.transports.Delete(k)
			if ht, ok := t.(*http.Transport); ok {
				ht.CloseIdleConnections()
			}
		}
		return true
	})
	p.breakers.Delete(upstreamName)
	p.slots.Delete(upstreamName)
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

	Continuation
}

// Call calls a tool on u as c. Progress and log notifications of the call
// go to relay (if not nil); cancelling ctx cancels the upstream call.
//
// A 2026-07-28 client's call to an HTTP upstream that speaks 2026-07-28
// too is one POST made here (callModern): an input_required result then
// reaches the client as the upstream sent it, so the client answers the
// upstream's questions itself. Other calls go through the SDK's session,
// which answers an input_required result by asking the client of the
// call (a session-based one) through the relay.
func (p *Pool) Call(ctx context.Context, c Caller, u spec.Upstream, call ToolCall, relay *Relay) (*mcp.CallToolResult, error) {
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
		if u.Kind == spec.Stdio {
			tok, err := p.assert(c, u)
			if err != nil {
				return err
			}
			meta[MetaIdentity] = tok
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

// maxListed bounds what one upstream may list.
const maxListed = 10000

// List lists every tool and prompt of u in a short-lived session as System.
func (p *Pool) List(ctx context.Context, u spec.Upstream) (l spec.Listing, err error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	// Collect what is injected, so that an error echoing it is redacted.
	injected := &Relay{}
	ctx = withRelay(ctx, injected)
	defer func() {
		if err != nil {
			if red := string(injected.Redact([]byte(err.Error()))); red != err.Error() {
				err = errors.New(red)
			}
		}
	}()
	cs, err := p.connect(ctx, System, u, nil)
	if err != nil {
		return l, err
	}
	defer cs.Close()
	ctx = WithCaller(ctx, System)
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return l, err
		}
		if l.Tools = append(l.Tools, t); len(l.Tools) > maxListed {
			return l, fmt.Errorf("upstream lists more than %d tools", maxListed)
		}
	}
	caps := &mcp.ServerCapabilities{}
	if init := cs.InitializeResult(); init != nil && init.Capabilities != nil {
		caps = init.Capabilities
	}
	if caps.Prompts != nil {
		if l.Prompts, err = collect(cs.Prompts(ctx, nil), "prompts"); err != nil {
			return l, err
		}
	}
	if caps.Resources != nil {
		if l.Resources, err = collect(cs.Resources(ctx, nil), "resources"); err != nil {
			return l, err
		}
		if l.Templates, err = collect(cs.ResourceTemplates(ctx, nil), "resource templates"); err != nil {
			return l, err
		}
	}
	// Definitions are shown to clients and pinned in the catalog: one that
	// quotes what was injected into the listing's requests is redacted.
	if err := redactAll(injected, l.Tools); err != nil {
		return l, err
	}
	if err := redactAll(injected, l.Prompts); err != nil {
		return l, err
	}
	if err := redactAll(injected, l.Resources); err != nil {
		return l, err
	}
	if err := redactAll(injected, l.Templates); err != nil {
		return l, err
	}
	return l, p.recordEcho(ctx, System, u, "upstream:"+u.Name, injected)
}

// redactAll redacts each element of list in place (elements without
// anything to redact are left as they are).
func redactAll[T any](r *Relay, list []*T) error {
	for i, v := range list {
		red, err := RedactValue(r, v)
		if err != nil {
			return err
		}
		list[i] = red
	}
	return nil
}

// collect gathers a listing, bounded.
func collect[T any](seq iter.Seq2[T, error], what string) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		if out = append(out, v); len(out) > maxListed {
			return nil, fmt.Errorf("upstream lists more than %d %s", maxListed, what)
		}
	}
	return out, nil
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

// connect opens a session with u as c: a user's call session when e is
// given, else the catalog's sync session. Both declare the same client
// capabilities (RelayedCapabilities), so a server that registers tools by
// what its client declares lists at the sync what it offers at a call.
func (p *Pool) connect(ctx context.Context, c Caller, u spec.Upstream, e *pooled) (*mcp.ClientSession, error) {
	opts := &mcp.ClientOptions{Capabilities: RelayedCapabilities()}
	if e != nil {
		e.askClient(p, c, u, opts)
		if u.Kind == spec.Stdio {
			e.relayTo(opts)
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "ostiary", Version: p.cfg.Version}, opts)
	var t mcp.Transport
	switch u.Kind {
	case spec.HTTP:
		// Redirects are not followed: the injector would give the next
		// host the admin's headers, secrets and the identity assertion.
		hc := &http.Client{Transport: &injector{base: p.transport(u, c.env()), pool: p, u: u, owner: c},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if e != nil {
			e.http, e.endpoint = hc, u.URL
		}
		t = &mcp.StreamableClientTransport{
			Endpoint:             u.URL,
			HTTPClient:           hc,
			DisableStandaloneSSE: true,
			MaxRetries:           -1,
		}
	case spec.Stdio:
		cmd, err := p.command(ctx, c, u, e)
		if err != nil {
			return nil, err
		}
		t = &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	default:
		return nil, fmt.Errorf("upstream %s: unknown kind %q", u.Name, u.Kind)
	}
	ctx, cancel := context.WithTimeout(WithCaller(ctx, c), 30*time.Second)
	defer cancel()
	var so *mcp.ClientSessionOptions
	legacy := p.eraMatched(c, u)
	if legacy {
		so = &mcp.ClientSessionOptions{ProtocolVersion: legacyVersion}
	}
	cs, err := client.Connect(ctx, t, so)
	if err == nil && legacy && cs.ID() == "" {
		// A 2026-07-28 server answering initialize statelessly: its 2025 era
		// has no session to deliver anything on, so the legacy caller is
		// better served, by translation, on a session at the latest.
		cs.Close()
		p.sessionless.Store(u.Name, u.CreatedAt)
		cs, err = client.Connect(ctx, t, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to upstream %s: %w", u.Name, err)
	}
	if e != nil {
		p.takeLogs(ctx, cs, u)
	}
	return cs, nil
}

// transport returns the HTTP transport for u: its own, so that a connection
// opened under one upstream's address policy is never reused by another.
// With a client certificate, whose key is a secret valued per environment,
// each environment has its own transport, so that a connection
// authenticated with one environment's key never carries another's calls.
func (p *Pool) transport(u spec.Upstream, env string) http.RoundTripper {
	if p.cfg.Transport != nil {
		return p.cfg.Transport
	}
	if u.TLS.ClientKeySecret == "" {
		env = ""
	}
	tlsID := sha256.Sum256(fmt.Appendf(nil, "%q/%q/%q/%t/%q", u.TLS.CA, u.TLS.ClientCert, u.TLS.ClientKeySecret, u.TLS.InsecureSkipVerify, env))
	policy := u.DialPolicy()
	key := fmt.Sprintf("%s/%+v/%d/%x", u.Name, policy, u.CreatedAt.UnixNano(), tlsID[:8])
	if t, ok := p.transports.Load(key); ok {
		return t.(http.RoundTripper)
	}
	base := spec.GuardedTransport(policy)
	cfg, err := p.tlsConfig(u)
	if err != nil { // validated when added: only a damaged store gets here
		return failingTransport{fmt.Errorf("upstream %s: TLS configuration: %w", u.Name, err)}
	}
	base.TLSClientConfig = cfg
	t, _ := p.transports.LoadOrStore(key, base)
	return t.(http.RoundTripper)
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// Admit checks what only the running server can say of an upstream: that
// a stdio upstream's program is on the operator's allow-list.
func (p *Pool) Admit(u spec.Upstream) error {
	if u.Kind != spec.Stdio {
		return nil
	}
	_, err := p.admitStdio(u)
	return err
}

// ReasonStdioRefused is the audit reason of a stdio process not started
// because its command or environment is not allowed.
const ReasonStdioRefused = "stdio-command-refused"

// command prepares a stdio upstream's process: the admin's command,
// checked again now against the allow-list and the environment rules (an
// upstream stored earlier, or a list narrowed since, must not run; a
// refusal is recorded), started from the real file that was checked, with
// a minimal environment (PATH and the configured variables only), stderr
// drained into the log, and the spawn audited before it happens.
func (p *Pool) command(ctx context.Context, c Caller, u spec.Upstream, e *pooled) (*exec.Cmd, error) {
	rec := audit.Record{Event: EventSpawn, Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID,
		Target: "upstream:" + u.Name, Detail: map[string]any{"command": u.Command}}
	real, err := p.admitStdio(u)
	if err != nil {
		rec.Outcome, rec.Reason, rec.Detail["error"] = audit.Denied, ReasonStdioRefused, err.Error()
		p.cfg.Logger.Warn("stdio upstream not started", "upstream", u.Name, "principal", c.User, "request_id", c.RequestID, "err", err)
		if _, werr := p.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); werr != nil {
			return nil, werr
		}
		return nil, &refusedError{err}
	}
	cmd := exec.Command(real, u.Command[1:]...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	known := vault.Known{}
	for k, v := range u.Env {
		v, err := p.resolve(ctx, c, u, v, known)
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if _, err := p.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, err
	}
	if e != nil {
		e.injected = known
	}
	cmd.Dir = "/"
	cmd.Stderr = &lineLogger{log: p.cfg.Logger, upstream: u.Name, user: c.User, known: known}
	return cmd, nil
}

// admitStdio is Admit at process start: it returns the real file to run,
// and any refusal as a *spec.CommandError.
func (p *Pool) admitStdio(u spec.Upstream) (string, error) {
	if err := u.ValidStdio(); err != nil {
		prog := ""
		if len(u.Command) > 0 {
			prog = u.Command[0]
		}
		return "", &spec.CommandError{Command: prog, Reason: err.Error()}
	}
	return p.cfg.StdioAllow.Check(u.Command[0])
}

// Signer signs identity assertions (assertion.Signer).
type Signer interface {
	Sign(c assertion.Claims) (string, error)
}

// assert signs the caller's identity assertion for u. If it cannot be
// signed the request is refused (a refusedError): an upstream never gets a
// request without one, which it could take for a request of nobody or of
// the gateway itself.
func (p *Pool) assert(c Caller, u spec.Upstream) (string, error) {
	tok, err := p.cfg.Signer.Sign(assertion.Claims{Subject: c.User, Audience: u.Name, Roles: c.Roles, KeyID: c.KeyID,
		Service: c.Service, Env: c.env(), RequestID: c.RequestID})
	if err != nil || tok == "" {
		p.cfg.Logger.Error("cannot sign identity assertion", "request_id", c.RequestID, "upstream", u.Name, "err", err)
		return "", &refusedError{errors.New("the caller's identity assertion cannot be signed")}
	}
	return tok, nil
}

// MetaIdentity is the _meta key carrying the identity assertion to stdio
// upstreams, which have no headers.
const MetaIdentity = "io.ostiary/identity"

func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// injector builds each HTTP request to an upstream: the admin's static
// headers, a fresh identity assertion for the caller in the request context
// (else the session's owner), and the correlation id. Nothing of the
// client's request is forwarded.
type injector struct {
	base  http.RoundTripper
	pool  *Pool
	u     spec.Upstream
	owner Caller
}

func (t *injector) RoundTrip(r *http.Request) (*http.Response, error) {
	c, ok := r.Context().Value(callerKey{}).(Caller)
	if !ok {
		c = t.owner
	}
	// The caller rides along in the context so that a TLS handshake this
	// request opens resolves the client key under their name.
	r = r.Clone(context.WithValue(r.Context(), callerKey{}, c))
	relay, _ := r.Context().Value(relayKey{}).(*Relay)
	known := vault.Known{}
	for k, v := range t.u.Headers {
		v, err := t.pool.resolve(r.Context(), c, t.u, v, known)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", t.u.Name, err)
		}
		r.Header.Set(k, v)
	}
	if relay != nil {
		relay.know(known)
	}
	tok, err := t.pool.assert(c, t.u)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", t.u.Name, err)
	}
	r.Header.Set(assertion.Header, tok)
	if c.RequestID != "" {
		r.Header.Set("X-Request-ID", c.RequestID)
	}
	if c.Traceparent != "" {
		r.Header.Set("Traceparent", c.Traceparent)
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{body: resp.Body, left: t.pool.cfg.MaxResponse, upstream: t.u.Name}
	if relay != nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &streamRelay{body: resp.Body, relay: relay}
	}
	return resp, nil
}

// capped fails a response body that exceeds its budget, so a flooding
// upstream costs a bounded amount of memory.
type capped struct {
	body     io.ReadCloser
	left     int64
	upstream string
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("upstream %s sent more than the response limit", c.upstream)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.body.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.body.Close() }

// lineLogger logs a stdio upstream's stderr line by line, bounded.
type lineLogger struct {
	log            *slog.Logger
	upstream, user string
	known          vault.Known // the secrets in the process's environment: redacted
	buf            []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > 4096 { // an endless line: log what we have
				i = len(l.buf)
			} else {
				return len(b), nil
			}
		}
		line := l.known.RedactString(string(l.buf[:i])) // before cutting: a cut secret would not match
		line = line[:min(len(line), 1024)]
		l.log.Info("upstream stderr", "upstream", l.upstream, "user", l.user, "line", line)
		l.buf = l.buf[min(i+1, len(l.buf)):]
	}
}

var _ io.Writer = (*lineLogger)(nil)

// reap closes sessions idle longer than IdleAfter.
func (p *Pool) reap() {
	defer close(p.done)
	t := time.NewTicker(max(p.cfg.IdleAfter/10, time.Second))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			cutoff := p.cfg.Now().Add(-p.cfg.IdleAfter)
			p.mu.Lock()
			for k, e := range p.sessions {
				if e.lastUsed.Before(cutoff) && e.busy.Load() == 0 {
					delete(p.sessions, k)
					go closeWhenReady(e)
				}
			}
			p.mu.Unlock()
		case <-p.stop:
			return
		}
	}
}

// Close closes every session and stops the reaper.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	sessions := p.sessions
	p.sessions = map[poolKey]*pooled{}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	var wg sync.WaitGroup
	for _, e := range sessions {
		wg.Add(1)
		go func() { defer wg.Done(); closeWhenReady(e) }()
	}
	wg.Wait()
}
