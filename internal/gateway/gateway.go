// Package gateway is the MCP front door at /mcp: one endpoint for both
// protocol eras (2026-07-28 stateless requests and the 2025 session-based
// revisions), where every request is authenticated by itself, checked
// strictly, and every tool call is authorized, executed as the user on the
// upstream and audited. The official Go SDK speaks the protocol, except
// on the hot path of plain 2026-07-28 tool calls (direct.go); this package
// decides who may do what. See DESIGN.md.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/metrics"
	"github.com/ostiary/ostiary/internal/quota"
	"github.com/ostiary/ostiary/internal/tracing"
)

// Authenticator verifies a request's Authorization header.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (*authn.Principal, error)
}

// Catalog provides the current tool catalog.
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// Blocker tells whether an active kill switch covers a request.
type Blocker interface {
	Blocking(sub killswitch.Subject) (killswitch.Switch, bool)
}

// Config holds the gateway's dependencies and settings.
type Config struct {
	Authn          Authenticator
	AuthFailures   *authn.FailureGuard // limits and aggregates failed authentications
	Pipeline       *govern.Pipeline    // governs what an authenticated request asks
	Catalog        Catalog             // for the Mcp-Param-* header checks
	Kill           Blocker             // a switch on a user or key refuses its requests at the door
	Auditor        audit.Appender
	Logger         *slog.Logger
	LibraryLogger  *slog.Logger // the MCP SDK's (its routine lines at debug); default Logger
	Now            func() time.Time
	Version        string
	AllowedOrigins []string         // browser origins allowed to call /mcp besides loopback ones
	MaxBodyBytes   int64            // default 1 MiB
	SessionIdle    time.Duration    // legacy sessions close after this idle time; default 30m
	WriteStall     time.Duration    // how long one write to a client that does not read may block; default 30s
	Limits         Limits           // request rate limits; zero rates mean none
	Caps           Caps             // what one user may hold at once
	Resource       Resource         // what the 401's metadata says of /mcp
	Metrics        *metrics.Metrics // nil: none
	Tracer         *tracing.Tracer  // nil: no tracing
}

// Gateway serves /mcp.
type Gateway struct {
	cfg          Config
	pl           *govern.Pipeline
	stateful     http.Handler // legacy revisions: sessions, GET stream, DELETE
	stateless    http.Handler // 2026-07-28: one request, no session
	sessions     *bindings
	origins      map[string]bool
	perKey       *limiter
	perUser      *limiter
	perTool      *limiter
	impl         *mcp.Implementation // who answers, in 2026-07-28 results
	answeredMeta []byte              // `"_meta":{serverInfo: impl}`, encoded once
	life         context.Context     // ends with Close
	end          context.CancelFunc
	detached     sync.WaitGroup // the gateway's own goroutines
	streams      streams        // open GET streams, ended when their key stops authenticating
	refused      *refusals      // budgets and counts of refused requests, by key
	userStreams  *quota.PerUser // open GET streams, by user
}

type principalKey struct{}

// New returns the gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Authn == nil || cfg.AuthFailures == nil || cfg.Pipeline == nil || cfg.Catalog == nil || cfg.Kill == nil || cfg.Auditor == nil || cfg.Logger == nil || cfg.Now == nil {
		return nil, errors.New("gateway: missing dependency")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.WriteStall <= 0 {
		cfg.WriteStall = 30 * time.Second
	}
	if cfg.LibraryLogger == nil {
		cfg.LibraryLogger = cfg.Logger
	}
	cfg.Caps = cfg.Caps.withDefaults()
	g := &Gateway{cfg: cfg, pl: cfg.Pipeline, sessions: &bindings{m: map[string]binding{}, idle: cfg.SessionIdle, now: cfg.Now}, origins: map[string]bool{},
		perKey: newLimiter(cfg.Limits.PerKey), perUser: newLimiter(cfg.Limits.PerUser), perTool: newLimiter(cfg.Limits.PerTool),
		refused: newRefusals(), userStreams: quota.New(cfg.Caps.Streams)}
	g.life, g.end = context.WithCancel(context.Background())
	go g.watchStreams()
	g.detached.Add(1)
	go g.flushRefusalsEvery(time.Second)
	for _, o := range cfg.AllowedOrigins {
		g.origins[strings.ToLower(o)] = true
	}
	g.impl = &mcp.Implementation{Name: "ostiary", Version: cfg.Version}
	meta, err := json.Marshal(map[string]any{mcp.MetaKeyServerInfo: g.impl})
	if err != nil {
		return nil, err
	}
	g.answeredMeta = append([]byte(`"_meta":`), meta...)
	server := mcp.NewServer(g.impl,
		&mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}, Prompts: &mcp.PromptCapabilities{},
			Resources: &mcp.ResourceCapabilities{}, Completions: &mcp.CompletionCapabilities{}}, Logger: cfg.LibraryLogger})
	server.AddReceivingMiddleware(g.route)
	getServer := func(*http.Request) *mcp.Server { return server }
	// The principal, already authenticated, reaches the SDK's handlers as
	// TokenInfo: this verifier only hands it over.
	handOver := auth.RequireBearerToken(func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		p, ok := r.Context().Value(principalKey{}).(*authn.Principal)
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: p.KeyID, Expiration: cfg.Now().Add(time.Hour), Extra: map[string]any{"principal": p}}, nil
	}, nil)
	g.stateful = handOver(mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		SessionTimeout: cfg.SessionIdle, MaxRequestBodyBytes: cfg.MaxBodyBytes, Logger: cfg.LibraryLogger}))
	g.stateless = handOver(mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless: true, MaxRequestBodyBytes: cfg.MaxBodyBytes, Logger: cfg.LibraryLogger, PropagateRequestCancellation: true}))
	return g, nil
}

// Close stops the gateway's own background work (stream rechecks, the
// flushing of refusal counts), flushing what is counted. The pipeline's
// calls are the pipeline's to end (govern.Pipeline.Close).
func (g *Gateway) Close() {
	g.end()
	done := make(chan struct{})
	go func() { g.detached.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.cfg.Logger.Warn("gateway background work still under way at shutdown")
	}
}

// ServeHTTP checks origin, authenticates, checks the message and hands it
// to the SDK handler of its protocol era.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := correlationID(r)
	w.Header().Set("X-Request-ID", reqID)
	if g.cfg.Tracer != nil {
		ctx, span := g.cfg.Tracer.StartRequest(r.Context(), "mcp "+r.Method, reqID, r.Header.Get("Traceparent"))
		defer span.End()
		r = r.WithContext(withSpan(ctx, span))
	}
	if f := edge.Check(r); f != nil {
		g.refuseAtEdge(w, r, reqID, f)
		return
	}
	unmapHost(r)
	if o := r.Header.Get("Origin"); o != "" {
		if !g.originAllowed(o) {
			g.refuseBrowser(w, r, reqID, "origin-not-allowed", "origin not allowed")
			return
		}
		cors(w, o)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			preflight(w, r)
			return
		}
	} else if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		// A browser sent this from another site without saying which.
		g.refuseBrowser(w, r, reqID, "cross-site-without-origin", "cross-site requests must carry an allowed Origin")
		return
	}
	if ok, wait := g.cfg.AuthFailures.Admit(authn.Attempt{Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, RequestID: reqID}); !ok {
		throttled(w, wait)
		return
	}
	p, err := g.authenticate(r)
	if err != nil {
		g.unauthenticated(w, r, reqID, err)
		return
	}
	p.RequestID, p.Remote = reqID, r.RemoteAddr
	if sw, ok := g.cfg.Kill.Blocking(killswitch.Subject{User: p.User, KeyID: p.KeyID}); ok {
		g.suspended(w, r, p, sw)
		return
	}
	if tp := r.Header.Get("Traceparent"); traceparentRE.MatchString(tp) {
		p.Traceparent = tp
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	// Streams and held calls may outlive the server's write timeout; a
	// client that stops reading may not (stall.go).
	w = newStallGuard(w, g.cfg.WriteStall)

	sessionID := r.Header.Get("Mcp-Session-Id")
	var bound binding
	if sessionID != "" {
		var ok bool
		if bound, ok = g.sessions.check(sessionID, p.KeyID); !ok {
			g.refuse(r.Context(), p, "session-unknown", map[string]any{"method": clip(r.Method)}) // another key's looks the same
			unknownSession(w)
			return
		}
	}
	switch r.Method {
	case http.MethodPost:
		g.post(w, r, p, sessionID, bound)
	case http.MethodGet, http.MethodDelete:
		if sessionID == "" {
			w.Header().Set("Allow", "POST")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.Method == http.MethodDelete {
			defer g.sessions.unbind(sessionID)
			g.stateful.ServeHTTP(w, r)
			return
		}
		if !g.userStreams.Acquire(p.User) {
			g.atCap(w, r, p, nil, ReasonStreamsCap, "open streams", g.cfg.Caps.Streams)
			return
		}
		defer g.userStreams.Release(p.User)
		g.streams.serve(p.KeyID, g.stateful, w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

func (g *Gateway) post(w http.ResponseWriter, r *http.Request, p *authn.Principal, sessionID string, bound binding) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		g.refuse(r.Context(), p, "body-too-large", map[string]any{"limit": g.cfg.MaxBodyBytes})
		writeRPCError(w, http.StatusRequestEntityTooLarge, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "request body too large"})
		return
	case err != nil:
		writeRPCError(w, http.StatusBadRequest, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "cannot read the request body"})
		return
	}
	m, rpcErr := parseMessage(body)
	g.count(r, m, rpcErr)
	if rpcErr != nil && rpcErr != errMethodUnknown {
		g.refuse(r.Context(), p, "message-malformed", map[string]any{"code": rpcErr.Code, "error": clip(rpcErr.Message)})
	}
	if rpcErr == errMethodUnknown && g.overLimit(w, r, p, "") { // unknown methods count against the key's rate too
		return
	}
	if rpcErr != nil {
		status := http.StatusBadRequest
		if rpcErr == errMethodUnknown {
			// 2026-07-28 answers an unserved method with 404; earlier
			// revisions with a JSON-RPC error in a 200.
			status = http.StatusOK
			if m.modern || r.Header.Get("Mcp-Protocol-Version") >= "2026-07-28" {
				status = http.StatusNotFound
			}
			g.refuseMethod(r.Context(), p, m.method)
		}
		writeRPCError(w, status, m.id, rpcErr)
		return
	}
	if m.method != "" && g.overLimit(w, r, p, m.toolName) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	p.Legacy = !m.modern && r.Header.Get("Mcp-Protocol-Version") < "2026-07-28"
	if !p.Legacy {
		var snap *catalog.Snapshot
		if m.method == "tools/call" && r.Header.Get("Mcp-Protocol-Version") >= "2026-07-28" {
			if snap = g.cfg.Catalog.Snapshot(); !g.paramHeadersMatch(w, r, p, m, snap) {
				return
			}
		}
		if client, ok := direct(r.Header, m); ok && sessionID == "" && rebindingSafe(r) {
			g.serveDirect(w, r, p, m, client, snap)
			return
		}
		g.stateless.ServeHTTP(w, r)
		return
	}
	if sessionID != "" {
		if g.directLegacy(r, m, bound) {
			g.serveDirectLegacy(w, r, p, m)
			return
		}
		g.stateful.ServeHTTP(w, r)
		g.sessions.sdkEnded(sessionID)
		return
	}
	if m.method == "initialize" && g.sessions.held(p.User) >= g.cfg.Caps.Sessions {
		g.atCap(w, r, p, m.id, ReasonSessionsCap, "open sessions", g.cfg.Caps.Sessions)
		return
	}
	var created string
	g.stateful.ServeHTTP(&captureSession{ResponseWriter: w, onID: func(id string) { created = id; g.sessions.bind(id, p.KeyID, p.User) }}, r)
	if created != "" {
		g.sessions.sdkEnded(created)
	}
}

// paramHeadersMatch checks the Mcp-Param-* headers of a tools/call against
// the pinned schema of a tool p may call (others are refused later as
// unknown, so nothing here reveals them); a mismatch is recorded and
// answered 400 with -32020.
func (g *Gateway) paramHeadersMatch(w http.ResponseWriter, r *http.Request, p *authn.Principal, m message, snap *catalog.Snapshot) bool {
	e, ok := snap.Lookup(m.toolName)
	if !ok || len(e.ParamHeaders) == 0 || !p.Allows(authz.Invoke, m.toolName) {
		return true
	}
	err := checkParamHeaders(r.Header, e.ParamHeaders, m.args)
	if err == nil {
		return true
	}
	rec := p.Record(govern.EventToolCall, "tool:"+m.toolName)
	rec.Detail = map[string]any{"upstream": e.Upstream, "version": e.Version}
	if derr := g.pl.Deny(r.Context(), rec, govern.ReasonHeaderMismatch, err); derr == govern.ErrAudit {
		writeRPCError(w, http.StatusServiceUnavailable, m.id, govern.ErrAudit)
		return false
	}
	writeRPCError(w, http.StatusBadRequest, m.id, &jsonrpc.Error{Code: codeHeaderMismatch, Message: err.Error()})
	return false
}

// refuseBrowser records and answers a request refused for where a browser
// sent it from.
func (g *Gateway) refuseBrowser(w http.ResponseWriter, r *http.Request, reqID, reason, msg string) {
	rec := audit.Record{Event: edge.EventRequestRefused, Outcome: audit.Denied, Reason: reason, RequestID: reqID, Remote: r.RemoteAddr,
		Detail: map[string]any{"origin": clip(r.Header.Get("Origin")), "sec_fetch_site": clip(r.Header.Get("Sec-Fetch-Site"))}}
	g.cfg.AuthFailures.Note(r.Context(), r.RemoteAddr, rec) // unauthenticated: budgeted per source
	g.cfg.Logger.Warn("mcp request refused", "request_id", reqID, "reason", reason, "origin", clip(r.Header.Get("Origin")))
	writeRPCError(w, http.StatusForbidden, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: msg})
}

// refuseAtEdge records and answers a request refused before anything read
// it (edge.Check).
func (g *Gateway) refuseAtEdge(w http.ResponseWriter, r *http.Request, reqID string, f *edge.Refusal) {
	g.cfg.AuthFailures.Note(r.Context(), r.RemoteAddr, f.Record(r, reqID)) // unauthenticated: budgeted per source
	g.cfg.Logger.Warn("mcp request refused", "request_id", reqID, "reason", f.Reason, "header", f.Header, "remote", r.RemoteAddr)
	writeRPCError(w, f.Status, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: f.Message})
}

// EventMethodRefused records a request for a method that is not exposed.
const EventMethodRefused = "method-refused"

// refuseMethod records a call of a method that is not exposed.
func (g *Gateway) refuseMethod(ctx context.Context, p *authn.Principal, method string) {
	g.refuseAs(ctx, p, EventMethodRefused, "method-not-allowed", map[string]any{"method": clip(method)})
}

// unauthenticated records the failure and answers 401 with the RFC 9728
// resource metadata, identical whatever the reason; or 503 if the
// credential store or the audit log is unavailable.
func (g *Gateway) unauthenticated(w http.ResponseWriter, r *http.Request, reqID string, err error) {
	limited, wait, rec, werr := g.cfg.AuthFailures.Failed(r.Context(), authn.Attempt{Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, RequestID: reqID}, err)
	if werr != nil {
		g.cfg.Logger.Error("cannot record a failed authentication", "request_id", reqID, "err", werr)
		err = werr
	}
	g.cfg.Logger.Warn("mcp authentication failed", "request_id", reqID, "reason", rec.Reason, "key_id", rec.KeyID, "remote", r.RemoteAddr)
	if limited && werr == nil {
		throttled(w, wait)
		return
	}
	var f *authn.Failure
	if !errors.As(err, &f) {
		w.Header().Set("Retry-After", "5")
		writeRPCError(w, http.StatusServiceUnavailable, nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "service unavailable"})
		return
	}
	w.Header().Set("WWW-Authenticate", g.cfg.Resource.challenge(r))
	writeRPCError(w, http.StatusUnauthorized, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "authentication required"})
}

// throttled answers a source or key id that spent its budget of failed
// authentications.
func throttled(w http.ResponseWriter, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeRPCError(w, http.StatusTooManyRequests, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
		Message: fmt.Sprintf("too many failed authentications; retry in %d s", secs)})
}

// originAllowed accepts configured origins and loopback ones: a page can
// only have a loopback origin if it is served from this machine, while a
// DNS-rebinding page keeps its own (foreign) origin.
func (g *Gateway) originAllowed(origin string) bool {
	if g.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" {
		return false
	}
	host := u.Hostname()
	return strings.EqualFold(host, "localhost") || loopback(host)
}

// ResourceMetadataURL is where the RFC 9728 metadata of /mcp is served.
func ResourceMetadataURL(r *http.Request) string {
	return baseURL(r) + "/.well-known/oauth-protected-resource/mcp"
}

// Resource describes /mcp as an OAuth protected resource (RFC 9728).
type Resource struct {
	URI                  string   // the resource identifier tokens must name; empty: this server's /mcp as the request reached it
	AuthorizationServers []string // issuers whose tokens /mcp accepts; none: API keys only
	Scopes               []string // scopes tokens must carry
}

// ResourceMetadata serves the RFC 9728 protected resource metadata: /mcp
// takes bearer API keys, or access tokens of the authorization servers it
// names, in the Authorization header.
func ResourceMetadata(res Resource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{
			"resource":                 res.uri(r),
			"resource_name":            "Ostiary MCP gateway",
			"bearer_methods_supported": []string{"header"},
		}
		if len(res.AuthorizationServers) > 0 {
			m["authorization_servers"] = res.AuthorizationServers
		}
		if len(res.Scopes) > 0 {
			m["scopes_supported"] = res.Scopes
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(m)
	}
}

func (res Resource) uri(r *http.Request) string {
	if res.URI != "" {
		return res.URI
	}
	return baseURL(r) + "/mcp"
}

// challenge is the WWW-Authenticate value of a 401 from /mcp.
func (res Resource) challenge(r *http.Request) string {
	c := `Bearer resource_metadata="` + ResourceMetadataURL(r) + `"`
	if len(res.Scopes) > 0 {
		c += `, scope="` + strings.Join(res.Scopes, " ") + `"`
	}
	return c
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !hostRE.MatchString(host) {
		host = "localhost"
	}
	return scheme + "://" + host
}

var (
	hostRE        = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?$`)
	requestIDRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$`)
)

// authenticate authenticates r's credential, in an authenticate span.
func (g *Gateway) authenticate(r *http.Request) (*authn.Principal, error) {
	ctx, span := g.cfg.Tracer.Start(r.Context(), tracing.SpanAuthenticate)
	defer span.End()
	p, err := g.cfg.Authn.Authenticate(ctx, r.Header.Get("Authorization"))
	if err != nil {
		span.Fail("unauthenticated")
	}
	return p, err
}

// count counts a request in the metrics, by method (from the allow-list:
// any other is "unknown", one that does not parse "malformed") and era,
// and names the request's span after its method.
func (g *Gateway) count(r *http.Request, m message, rpcErr *jsonrpc.Error) {
	method := m.method
	switch {
	case rpcErr == errMethodUnknown:
		method = "unknown"
	case rpcErr != nil || method == "":
		method = "malformed"
	}
	g.cfg.Metrics.Request(method, !m.modern && r.Header.Get("Mcp-Protocol-Version") < "2026-07-28")
	if g.cfg.Tracer == nil {
		return
	}
	if span := spanOf(r.Context()); span.Recording() {
		span.SetName("mcp " + method)
		span.Set(tracing.AttrMethod.String(method))
	}
}

type spanKey struct{}

func withSpan(ctx context.Context, s tracing.Span) context.Context {
	return context.WithValue(ctx, spanKey{}, s)
}

// spanOf is the request's server span (the zero Span when tracing is off).
func spanOf(ctx context.Context) tracing.Span {
	s, _ := ctx.Value(spanKey{}).(tracing.Span)
	return s
}

// Open is what the gateway holds open: 2025-era sessions and GET streams.
func (g *Gateway) Open() (sessions, streams int) {
	return g.sessions.count(), g.streams.count()
}

// correlationID takes a well-formed X-Request-ID, else the trace id of a
// well-formed W3C traceparent, else mints one.
func correlationID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); requestIDRE.MatchString(id) {
		return id
	}
	if m := traceparentRE.FindStringSubmatch(r.Header.Get("Traceparent")); m != nil {
		return m[1]
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeRPCError(w http.ResponseWriter, status int, id any, e *jsonrpc.Error) {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": e})
	if err != nil { // data (an upstream's) that is not JSON: the error without it
		body, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": &jsonrpc.Error{Code: e.Code, Message: e.Message}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func clip(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strings.ToValidUTF8(s, "?")
}
