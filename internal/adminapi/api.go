// Package adminapi is the JSON admin API under /api/v1. Every request is
// authenticated by API key, authorized by grant and audited, failures
// included; errors carry a stable code and a safe message, never an internal
// error text. Routes are listed in routes.go.
package adminapi

import (
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/lru"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/review"
	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/vault"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Authenticator verifies a request's Authorization header.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (*authn.Principal, error)
}

// AuditStore answers audit queries.
type AuditStore interface {
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
	Approvals(ctx context.Context, q approval.Query) ([]approval.Approval, error)
}

// Config holds the API's dependencies; all are required.
type Config struct {
	Authn    Authenticator
	Failures *authn.FailureGuard
	// WriteRate bounds each key's writes (every method but GET and HEAD);
	// a zero Per means no limit.
	WriteRate config.Rate
	Identity  *identity.Service
	Catalog   *catalog.Catalog
	Kill      *killswitch.Service
	Vault     *vault.Vault
	Auditor   identity.Auditor
	Audit     AuditStore
	Logger    *slog.Logger
	Now       func() time.Time
	Policy    *policy.Service
	Explainer Explainer // the pipeline, for policy explain
	Approvals *approval.Service
	// Evidence, if set, proves records and signs evidence bundles (the
	// audit writer); without it, evidence export is unavailable.
	Evidence Prover
	// Version is Ostiary's, named in evidence bundles.
	Version string
	// Changes runs reviewed proposals: a change whose kind requires
	// review becomes one (202) instead of applying.
	Changes *change.Service
	// Index, if set, is the writer filling the audit index behind the log:
	// a query waits (briefly) for it to hold every record logged so far,
	// and says how far behind it still is.
	Index IndexSettler
	// Alerts acknowledges and lists governance alerts; nil: not configured.
	Alerts *alert.Service
	// Reviews runs access reviews.
	Reviews *review.Service
}

// IndexSettler waits for the audit index to catch up with the log.
type IndexSettler interface {
	Settle(ctx context.Context, d time.Duration) uint64
}

// settleWait bounds how long a query waits for the index.
const settleWait = time.Second

// settle waits for the audit index and returns how many records it lacks.
func (a *API) settle(ctx context.Context) uint64 {
	if a.Index == nil {
		return 0
	}
	return a.Index.Settle(ctx, settleWait)
}

// API serves /api/v1.
type API struct {
	Config
	mux *http.ServeMux

	writesMu sync.Mutex
	writes   *lru.Map[string, *rate.Limiter] // by key id

	exporting atomic.Bool // an evidence export (a read of the whole log) is under way
}

// New returns the admin API handler.
func New(cfg Config) (*API, error) {
	if cfg.Authn == nil || cfg.Failures == nil || cfg.Identity == nil || cfg.Catalog == nil || cfg.Kill == nil || cfg.Vault == nil || cfg.Auditor == nil || cfg.Audit == nil || cfg.Logger == nil || cfg.Now == nil || cfg.Policy == nil || cfg.Explainer == nil || cfg.Approvals == nil || cfg.Changes == nil || cfg.Reviews == nil {
		return nil, errors.New("adminapi: missing dependency")
	}
	a := &API{Config: cfg, mux: http.NewServeMux(), writes: lru.New[string, *rate.Limiter](10000)}
	a.routes()
	return a, nil
}

// handlerFunc is an authenticated handler. It returns the value to send
// as JSON with the given status, or an error to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error)

type ctxKey struct{}

// ServeHTTP assigns a request id, authenticates, and dispatches.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := requestID(r)
	w.Header().Set("X-Request-ID", reqID)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	start := a.Now()
	if f := edge.Check(r); f != nil {
		a.Failures.Note(r.Context(), r.RemoteAddr, f.Record(r, reqID)) // unauthenticated: budgeted per source
		a.Logger.Warn("admin request refused", "request_id", reqID, "reason", f.Reason, "header", f.Header, "remote", r.RemoteAddr)
		writeJSON(w, f.Status, ErrorBody{Error: ErrorDetail{Code: string(fault.Invalid), Message: f.Message}, RequestID: reqID})
		return
	}
	if ok, wait := a.Failures.Admit(authn.Attempt{Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, RequestID: reqID}); !ok {
		a.throttled(w, reqID, wait)
		return
	}
	p, err := a.Authn.Authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		a.authFailed(w, r, reqID, err)
		return
	}
	p.RequestID, p.Remote = reqID, r.RemoteAddr
	if wait, limited := a.writeLimited(r, p); limited {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		rl := p.Record(edge.EventRateLimited, "")
		rl.Outcome, rl.Reason, rl.Detail = audit.Denied, "rate-limit-admin-writes", map[string]any{"method": r.Method, "path": clip(r.URL.Path, 200), "retry_after_s": secs}
		if _, err := a.Auditor.Write(context.WithoutCancel(r.Context()), audit.Entry{Record: rl}); err != nil {
			a.Logger.Error("cannot record a rate limit", "request_id", reqID, "err", err)
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, ErrorBody{Error: ErrorDetail{Code: "rate-limited",
			Message: fmt.Sprintf("too many admin writes with this key; retry in %d s", secs)}, RequestID: reqID})
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	a.mux.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	a.Logger.Info("admin request", "request_id", reqID, "principal", p.User, "key_id", p.KeyID,
		"method", r.Method, "path", r.URL.Path, "status", rec.status, "duration_ms", a.Now().Sub(start).Milliseconds())
}

// authFailed records the failure and answers 401 (or 503 when the
// credential store or the audit log is unavailable).
func (a *API) authFailed(w http.ResponseWriter, r *http.Request, reqID string, err error) {
	limited, wait, rec, werr := a.Failures.Failed(r.Context(), authn.Attempt{Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.Path, RequestID: reqID}, err)
	if werr != nil {
		err = werr
	}
	a.Logger.Warn("authentication failed", "request_id", reqID, "reason", rec.Reason, "key_id", rec.KeyID, "remote", r.RemoteAddr)
	if limited && werr == nil {
		a.throttled(w, reqID, wait)
		return
	}
	if fault.Is(err, fault.Unauthenticated) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ostiary"`)
	}
	a.writeError(w, reqID, err)
}

// writeLimited takes a token from p's key's budget of writes, or says how
// long to wait for one. Reads are not limited here.
func (a *API) writeLimited(r *http.Request, p *authn.Principal) (time.Duration, bool) {
	if a.WriteRate.Per == 0 || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return 0, false
	}
	now := a.Now()
	a.writesMu.Lock()
	l := a.writes.GetOrAdd(p.KeyID, func() *rate.Limiter { return rate.NewLimiter(rate.Limit(a.WriteRate.Per), a.WriteRate.Burst) })
	a.writesMu.Unlock()
	if l.AllowN(now, 1) {
		return 0, false
	}
	res := l.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	res.CancelAt(now)
	return wait, true
}

// throttled answers a source or key id that spent its budget of failed
// authentications: 429 with Retry-After.
func (a *API) throttled(w http.ResponseWriter, reqID string, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, ErrorBody{Error: ErrorDetail{Code: "rate-limited",
		Message: fmt.Sprintf("too many failed authentications; retry in %d s", secs)}, RequestID: reqID})
}

// handle adapts a handlerFunc to the mux.
func (a *API) handle(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := r.Context().Value(ctxKey{}).(*authn.Principal)
		status, body, err := fn(w, r, p)
		if err != nil {
			a.Logger.Info("admin request refused", "request_id", p.RequestID, "principal", p.User, "err", err)
			a.writeError(w, p.RequestID, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// decode reads a JSON body strictly into v. On failure the refusal is
// recorded with rec and returned.
func (a *API) decode(w http.ResponseWriter, r *http.Request, rec audit.Record, v any) error {
	err := readJSON(w, r, v)
	if err != nil {
		return audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	return nil
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fault.New(fault.Invalid, "Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fault.New(fault.TooLarge, "request body exceeds %d bytes", MaxBodyBytes)
		}
		return fault.New(fault.Invalid, "cannot read the request body")
	}
	if err := strictjson.Decode(body, v); err != nil {
		return fault.New(fault.Invalid, "malformed request body: %v", err)
	}
	return nil
}

var statusOf = map[fault.Kind]int{
	fault.Invalid:         http.StatusBadRequest,
	fault.Unauthenticated: http.StatusUnauthorized,
	fault.Forbidden:       http.StatusForbidden,
	fault.NotFound:        http.StatusNotFound,
	fault.Conflict:        http.StatusConflict,
	fault.TooLarge:        http.StatusRequestEntityTooLarge,
	fault.Unavailable:     http.StatusServiceUnavailable,
	fault.Internal:        http.StatusInternalServerError,
}

// writeError renders err as an ErrorBody: its kind as the code, its safe
// message, never its cause.
func (a *API) writeError(w http.ResponseWriter, reqID string, err error) {
	k := fault.KindOf(err)
	if k == fault.Internal || k == fault.Unavailable {
		a.Logger.Error("admin request failed", "request_id", reqID, "err", err)
	}
	status, ok := statusOf[k]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: string(k), Message: fault.SafeMessage(err)}, RequestID: reqID})
}

// rawJSON is an answer already encoded, sent byte for byte (an evidence
// bundle's canonical form, which encoding/json would escape differently).
type rawJSON []byte

func writeJSON(w http.ResponseWriter, status int, v any) {
	if raw, ok := v.(rawJSON); ok {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		w.Write(raw)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// requestID returns the client's X-Request-ID when it is well-formed (so it
// cannot forge log lines), else a fresh random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); id != "" && len(id) <= 128 && isToken(id) {
		return id
	}
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// clip bounds a client-supplied text and makes it valid UTF-8.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
