//lint:file-ignore SA1019 sampling is deprecated as of 2026-07-28 (SEP-2577) but still in its deprecation window: a session's upstream may ask it, and it is relayed on purpose.

// Package upstream connects Ostiary to the MCP servers behind it, as an
// admin configured them (spec.Upstream): a Pool holds one client session
// per (user, upstream), never shared between users, each request carrying
// a fresh identity assertion instead of any client credential.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// The pool and its sessions: one per (user, environment, upstream, era),
// connected on first use, released after each request, dropped after a
// transport failure, forgotten with its upstream, reaped when idle and
// closed with the pool.

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
	// TokenEndpoint finds an identity provider's token endpoint, for
	// upstreams that exchange the caller's token (nil: none trusted);
	// IdPTransport reaches it (default: net/http's).
	TokenEndpoint TokenEndpoints
	IdPTransport  http.RoundTripper
	// Observe, if set, is told of every request made to an upstream under
	// its breaker: how long it took and whether it failed for the
	// upstream's health (metrics). It must not block.
	Observe func(upstream string, took time.Duration, failed bool)
}

// Pool holds the client sessions to upstreams: one per (user, environment,
// upstream), since a stdio process holds the secret values of the
// environment it was started for.
type Pool struct {
	cfg          PoolConfig
	transports   sync.Map // upstream name + policy → *http.Transport
	sessionless  sync.Map // upstream name → its CreatedAt: answers 2025 initialize without a session
	breakers     sync.Map // upstream name → *breaker
	slots        sync.Map // upstream name → chan struct{} (concurrency limit)
	tokens       sync.Map // OpenAPI upstream name/created/environment → oauthToken
	exchangeOnce sync.Once
	exchanges    *exchangeCache // token-exchange upstreams' tokens, by exchangeKey
	mu           sync.Mutex
	sessions     map[poolKey]*pooled
	closed       bool
	stop         chan struct{}
	done         chan struct{}
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
	// What the upstream may ask the client during a call (askClient), for
	// requests on a call's own response stream (session.go).
	sample func(context.Context, *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error)
	elicit func(context.Context, *mcp.ElicitParams) (*mcp.ElicitResult, error)
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
	p.tokens.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), upstreamName+"/") {
			p.tokens.Delete(k)
		}
		return true
	})
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
