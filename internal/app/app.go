// Package app is the composition root: it turns a Config into a running
// server (store → audit writer → authenticator → services → HTTP), and
// provides the offline operations init and audit verify. cmd/ostiary and
// the end-to-end tests are its only importers.
package app

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/anchor"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/export"
	"github.com/ostiary/ostiary/internal/gateway"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/logging"
	"github.com/ostiary/ostiary/internal/metrics"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/recovery"
	"github.com/ostiary/ostiary/internal/review"
	"github.com/ostiary/ostiary/internal/store/sqlite"
	"github.com/ostiary/ostiary/internal/tracing"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
	"github.com/ostiary/ostiary/internal/vault/hsm"
	"github.com/ostiary/ostiary/internal/webhook"
)

// Version is set at build time with -ldflags "-X ...app.Version=…".
var Version = "dev"

// App is a running (or ready to run) Ostiary server.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	now      func() time.Time
	layout   Layout
	lockF    *os.File
	store    *sqlite.Store
	auditLog *wal.Log
	writer   *audit.Writer
	anchors  *anchor.Pusher    // nil without --anchor
	calls    *recovery.Tracker // the pipeline's writer: counts the calls on record without an outcome
	authn    *authn.Authenticator
	tokens   *authn.TokenAuthenticator // nil without --oidc-issuer
	failures *authn.FailureGuard
	signer   *assertion.Signer
	pool     *upstream.Pool
	catalog  *catalog.Catalog
	gateway  *gateway.Gateway
	pipeline *govern.Pipeline
	api      *adminapi.API
	tls      *tls.Config // nil: plain HTTP (loopback only)
	vault    *vault.Vault
	hsm      *hsm.Key // the vault's master key in an HSM, if configured
	server   *http.Server
	ln       net.Listener
	metrics  *metrics.Metrics // nil without --metrics-listen
	mserver  *http.Server
	mln      net.Listener
	tracer   *tracing.Tracer // nil without --otlp-endpoint

	base       context.Context    // every request's context derives from it
	cancelBase context.CancelFunc // ends long-lived streams at shutdown
	stopFlush  chan struct{}
	flushDone  chan struct{}
	approvals  *approval.Service
	webhooks   *webhook.Dispatcher // nil without --approval-webhook
	alerts     *alert.Service      // nil without --alerts
	alertFeed  *audit.Feed         // the records the alert rules read
	reviews    *review.Service
	exporter   *export.Exporter // nil without --export
	opsDone    chan struct{}    // one value per loop startOps started, as it ends
	sweepDone  chan struct{}    // closed when the approval expiry loop has ended
	vaultDone  chan struct{}    // closed when the vault's lifecycle loop has ended
	closeOnce  sync.Once
	closeErr   error
}

// Init creates a data directory: store, signing and hashing keys, the
// built-in roles and the admin user. It returns the admin's API key, which
// is printed once and stored nowhere. It refuses an initialised directory,
// and removes what it created if it fails.
func Init(ctx context.Context, dir string, now func() time.Time) (adminKey string, err error) {
	l := Layout{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot create data directory: %w", err)
	}
	if l.initialised() {
		return "", fmt.Errorf("data directory %s is already initialised; refusing to overwrite it", dir)
	}
	lockF, err := l.lock()
	if err != nil {
		return "", err
	}
	defer lockF.Close()
	defer func() {
		if err != nil {
			for _, p := range []string{l.DB(), l.DB() + "-wal", l.DB() + "-shm", l.Checkpoint(), l.Checkpoint() + ".tree", l.KeysDir(), l.AuditLog()} {
				os.RemoveAll(p)
			}
		}
	}()
	if err := l.writeKeys(); err != nil {
		return "", fmt.Errorf("cannot write keys: %w", err)
	}
	priv, err := l.signingKey()
	if err != nil {
		return "", err
	}
	hk, err := l.hmacKey()
	if err != nil {
		return "", err
	}
	hasher, err := authn.NewHasher(hk)
	if err != nil {
		return "", err
	}
	st, err := sqlite.Open(ctx, l.DB(), sqlite.Options{Create: true})
	if err != nil {
		return "", err
	}
	defer st.Close()
	log, err := wal.Open(l.AuditLog(), wal.Options{})
	if err != nil {
		return "", err
	}
	defer log.Close()
	w, err := audit.NewWriter(ctx, audit.WriterConfig{Log: log, Store: st, Signer: priv, CheckpointPath: l.Checkpoint(), Now: now})
	if err != nil {
		return "", err
	}
	key, err := identity.Bootstrap(ctx, w, hasher, now())
	w.Close() // writes the first checkpoint
	if err != nil {
		return "", err
	}
	if _, err := audit.ReadCheckpointFile(l.Checkpoint()); err != nil {
		return "", fmt.Errorf("first audit checkpoint not written: %w", err)
	}
	return key, nil
}

// Open opens an initialised data directory and wires the server, without
// listening yet.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every line gets its request's id and loses any credential, whoever
	// built the logger.
	log = slog.New(logging.Wrap(log.Handler()))
	a := &App{cfg: cfg, log: log, now: now, layout: Layout{Dir: cfg.DataDir}}
	if err := a.open(ctx); err != nil {
		a.release()
		return nil, err
	}
	return a, nil
}

func (a *App) open(ctx context.Context) error {
	l := a.layout
	// The programs stdio upstreams may run are the operator's to fix, here
	// and now: a list that does not check out stops the start.
	allow, err := spec.NewStdioAllow(a.cfg.StdioAllow)
	if err != nil {
		return err
	}
	for _, e := range allow.Entries() {
		if spec.Interpreter(e) {
			a.log.Warn("the stdio allow-list names a shell or interpreter: any admin can run code with it on this host", "path", e)
		}
	}
	if err := l.checkInitialised(); err != nil {
		return err
	}
	if a.lockF, err = l.lock(); err != nil {
		return err
	}
	priv, err := l.signingKey()
	if err != nil {
		return err
	}
	hk, err := l.hmacKey()
	if err != nil {
		return err
	}
	hasher, err := authn.NewHasher(hk)
	if err != nil {
		return err
	}
	if err := l.ensureIdentityKey(); err != nil {
		return fmt.Errorf("cannot create the identity assertion key: %w", err)
	}
	idKey, err := l.identityKey()
	if err != nil {
		return err
	}
	if a.signer, err = assertion.NewSigner(idKey, a.now); err != nil {
		return err
	}
	if a.store, err = sqlite.Open(ctx, l.DB(), sqlite.Options{Timeout: a.cfg.StoreTimeout}); err != nil {
		return err
	}
	if a.cfg.MetricsListen != "" {
		a.metrics = metrics.New(Version)
	}
	if a.cfg.OTLPEndpoint != "" {
		if a.tracer, err = tracing.New(tracing.Config{Endpoint: a.cfg.OTLPEndpoint, Version: Version}); err != nil {
			return err
		}
	}
	var onBatch func(int, time.Duration)
	var onUpstream func(string, time.Duration, bool)
	if a.metrics != nil {
		onBatch, onUpstream = a.metrics.AuditBatch, a.metrics.Upstream
	}
	_, statErr := os.Stat(l.AuditLog())
	fromDatabase := errors.Is(statErr, fs.ErrNotExist) // a data directory from before the log
	if a.auditLog, err = openAuditLog(l, a.log); err != nil {
		return err
	}
	var onCheckpoint func(audit.Checkpoint)
	if len(a.cfg.Anchors) > 0 {
		if a.anchors, err = a.openAnchors(ctx, priv.Public().(ed25519.PublicKey)); err != nil {
			return err
		}
		onCheckpoint = a.anchors.Offer
	}
	// Credentials in audit text become search tokens keyed by the vault,
	// which opens after the writer: until then they are plainly redacted.
	var vaultRef atomic.Pointer[vault.Vault]
	if a.writer, err = audit.NewWriter(ctx, audit.WriterConfig{Log: a.auditLog, Store: a.store, Signer: priv, FromDatabase: fromDatabase, CheckpointPath: l.Checkpoint(), OnCheckpoint: onCheckpoint,
		Now: a.now, Logger: a.log, CheckpointEvery: a.cfg.CheckpointEvery, RequireCheckpoint: true, StoreTimeout: a.cfg.StoreTimeout, OnBatch: onBatch,
		Scrub: func(s string) string { return vaultRef.Load().ScrubAudit(s) }}); err != nil {
		return err
	}
	if a.authn, err = authn.NewAuthenticator(a.store, hasher, a.now); err != nil {
		return err
	}
	ids, err := identity.NewService(a.store, a.writer, identityChanges{a}, hasher, a.now)
	if err != nil {
		return err
	}
	if a.cfg.OIDC.Enabled() {
		if a.tokens, err = newTokenAuthenticator(a.cfg.OIDC, a.store, ids, a.now); err != nil {
			return err
		}
	}
	creds := authn.Chain{Keys: a.authn, Tokens: a.tokens}
	masters, err := a.masterKeys()
	if err != nil {
		return err
	}
	if a.vault, err = vault.NewWith(a.store, a.writer, a.now, masters...); err != nil {
		return err
	}
	if err := a.vault.Open(ctx); err != nil {
		return err
	}
	vaultRef.Store(a.vault)
	var endpoints upstream.TokenEndpoints
	if a.tokens != nil {
		endpoints = a.tokens.TokenEndpoint
	}
	if a.pool, err = upstream.NewPool(upstream.PoolConfig{MaxConcurrent: a.cfg.UpstreamSlots, Signer: a.signer, Auditor: a.writer, Logger: a.log, Now: a.now, Version: Version,
		Secrets: a.vault, StdioAllow: allow, TokenEndpoint: endpoints, Observe: onUpstream}); err != nil {
		return err
	}
	if a.catalog, err = catalog.New(ctx, a.store, a.writer, a.pool, a.now, a.log); err != nil {
		return err
	}
	kill, err := killswitch.New(ctx, a.store, a.writer, a.now)
	if err != nil {
		return err
	}
	a.vault.SetKiller(kill)    // a compromised secret's upstreams can be cut off
	ids.SetAccessLoss(a.vault) // whoever leaves, the secrets they could reach are marked for rotation
	policies, err := policy.NewService(ctx, a.store, a.writer, a.now)
	if err != nil {
		return err
	}
	if pr := policies.Problem(); pr != "" {
		a.log.Error("policy", "problem", pr)
	}
	changes, err := a.changes(policies, ids)
	if err != nil {
		return err
	}
	if a.approvals, err = approval.New(a.store, a.writer, a.now); err != nil {
		return err
	}
	a.approvals.SetMaxPending(a.cfg.UserPending)
	if a.metrics != nil {
		a.approvals.SetSettled(a.metrics.ApprovalSettled)
	}
	if len(a.cfg.Webhooks) > 0 {
		keyFile := a.cfg.WebhookKeyFile
		if keyFile == "" {
			keyFile = l.WebhookKey()
			if _, err := EnsureMasterKeyFile(keyFile); err != nil { // 64 random hex characters, 0600
				return fmt.Errorf("cannot create the webhook signing key: %w", err)
			}
		}
		key, err := readWebhookKey(keyFile)
		if err != nil {
			return err
		}
		var targets []webhook.Target
		for _, w := range a.cfg.Webhooks {
			t, err := config.ParseWebhook(w)
			if err != nil {
				return err
			}
			format := webhook.FormatJSON
			if t.Slack {
				format = webhook.FormatSlack
			}
			targets = append(targets, webhook.Target{URL: t.URL, Format: format})
		}
		if a.webhooks, err = webhook.New(webhook.Config{Targets: targets, Key: key, Auditor: a.writer, Logger: a.log, Now: a.now,
			Backoff: a.cfg.WebhookBackoff}); err != nil {
			return err
		}
		a.approvals.SetNotifier(a.webhooks)
	}
	if err := a.openOps(ctx, ids); err != nil {
		return err
	}
	if a.failures, err = authn.NewFailureGuard(a.cfg.RateAuthFail.Per, a.cfg.RateAuthFail.Burst, a.cfg.AuthFailWindow, a.writer, a.log, a.now); err != nil {
		return err
	}
	elicitHosts, err := config.ElicitHosts(a.cfg.ElicitURLAllow)
	if err != nil {
		return err
	}
	a.calls = recovery.Track(a.writer)
	if a.pipeline, err = govern.New(govern.Config{Catalog: a.catalog, Upstreams: a.pool, Auditor: a.calls, Kill: kill, Logger: a.log, Now: a.now,
		CallTimeout: a.cfg.CallTimeout, CallsPerUser: a.cfg.UserCalls, Policy: policies, Users: users{a.store},
		Approvals: a.approvals, ApprovalWait: a.cfg.ApprovalWait, ElicitURLAllow: spec.NewHostAllow(elicitHosts), Metrics: a.metrics, Tracer: a.tracer}); err != nil {
		return err
	}
	if a.gateway, err = gateway.New(gateway.Config{Authn: creds, Resource: a.resource(), AuthFailures: a.failures, Pipeline: a.pipeline, Catalog: a.catalog, Kill: kill, Auditor: a.writer,
		Logger: a.log, LibraryLogger: slog.New(logging.Library(a.log.Handler())), Now: a.now, Version: Version, AllowedOrigins: a.cfg.AllowedOrigins, WriteStall: a.cfg.WriteStall,
		Caps:   gateway.Caps{Sessions: a.cfg.UserSessions, Streams: a.cfg.UserStreams},
		Limits: gateway.Limits{PerKey: a.cfg.RateKey, PerUser: a.cfg.RateUser, PerTool: a.cfg.RateTool}, Metrics: a.metrics, Tracer: a.tracer}); err != nil {
		return err
	}
	a.observe(kill)
	if a.api, err = adminapi.New(adminapi.Config{Authn: creds, Failures: a.failures, WriteRate: a.cfg.RateAdminWrite, Identity: ids, Catalog: a.catalog, Kill: kill, Vault: a.vault, Auditor: a.writer, Audit: a.store, Logger: a.log, Now: a.now,
		Policy: policies, Explainer: a.pipeline, Approvals: a.approvals, Index: a.writer, Evidence: a.writer, Version: Version, Changes: changes, Alerts: a.alerts, Reviews: a.reviews}); err != nil {
		return err
	}
	if a.cfg.TLS() {
		certs, err := newCertReloader(a.cfg.TLSCert, a.cfg.TLSKey, a.log, a.now)
		if err != nil {
			return err
		}
		a.tls = tlsConfig(certs, a.cfg.TLSMin)
	}
	a.base, a.cancelBase = context.WithCancel(context.Background())
	a.server = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return a.base },
		TLSConfig:         a.tls,
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// Handler is the server's root handler.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", a.failClosed(a.api, false))
	mux.Handle("/mcp", a.accessLog(a.failClosed(a.gateway, true)))
	meta := gateway.ResourceMetadata(a.resource())
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", meta)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource", meta)
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(a.signer.JWKS())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusNotFound, "not found")
	})
	return withRequestID(mux)
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// Start marks the calls the previous run left without an outcome
// (recovery), listens on the configured address, records the start, and
// serves in the background.
func (a *App) Start(ctx context.Context) error {
	start := a.now()
	marked, err := recovery.Recover(ctx, a.store, a.writer, start)
	if err != nil {
		return fmt.Errorf("cannot mark the calls left without an outcome: %w", err)
	}
	for _, m := range marked {
		a.log.Warn("a call's outcome was never recorded; marked unknown-after-crash: check its effect upstream", "request_id", m.RequestID,
			"principal", m.Actor, "target", m.Target, "decision_seq", m.Detail["decision_seq"], "seq", m.Seq)
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", a.cfg.Listen, err)
	}
	if a.tls != nil {
		ln = tls.NewListener(ln, a.tls)
	}
	a.ln = ln
	if err := a.serveMetrics(); err != nil {
		ln.Close()
		return err
	}
	// After recovery, and at the time its records cite: every decision
	// before this record has its outcome (recovery.Recover).
	rec := audit.Record{Time: start, Event: audit.EventServerStart, Outcome: audit.Success, Actor: "system",
		Detail: map[string]any{"version": Version, "listen": ln.Addr().String(), "tls": a.tls != nil, "unknown_after_crash": len(marked)}}
	if _, err := a.writer.Write(ctx, audit.Entry{Record: rec}); err != nil {
		ln.Close()
		a.closeMetrics()
		return fmt.Errorf("cannot write the audit log: %w", err)
	}
	a.stopFlush, a.flushDone = make(chan struct{}), make(chan struct{})
	go a.flushLastUsed()
	a.sweepDone = make(chan struct{})
	go func() {
		defer close(a.sweepDone)
		a.approvals.Run(a.base, time.Second, func(err error) { a.log.Error("approval expiry", "err", err) })
	}()
	go a.syncUpstreams(context.WithoutCancel(ctx))
	a.startOps()
	a.vault.ResumeRekey() // a data-key rotation a stop or crash interrupted
	a.vaultDone = make(chan struct{})
	go func() {
		defer close(a.vaultDone)
		a.vault.Run(a.base, a.cfg.VaultCheckEvery, func(err error) { a.log.Error("vault lifecycle", "err", err) })
	}()
	go func() {
		if err := a.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("server stopped", "err", err)
		}
	}()
	a.log.Info("ostiary serving", "addr", ln.Addr().String(), "tls", a.tls != nil, "data", a.cfg.DataDir, "version", Version,
		"stdio_allow", a.cfg.StdioAllow, "elicit_url_allow", a.cfg.ElicitURLAllow)
	return nil
}

// Addr is the address the server listens on, after Start.
func (a *App) Addr() string { return a.ln.Addr().String() }

// URL is the server's base URL, after Start.
func (a *App) URL() string {
	if a.tls != nil {
		return "https://" + a.Addr()
	}
	return "http://" + a.Addr()
}

// AuditStopped is why the audit log has stopped for good (a storage
// failure), or nil; /readyz reports it.
func (a *App) AuditStopped() *audit.StorageError { return a.writer.Stopped() }

// PublicKey is the audit checkpoint verification key.
func (a *App) PublicKey() ed25519.PublicKey { return a.writer.PublicKey() }

// syncUpstreams refreshes every upstream's tools in the catalog at start.
func (a *App) syncUpstreams(ctx context.Context) {
	for _, u := range a.catalog.Snapshot().Upstreams() {
		if _, err := a.catalog.Sync(ctx, u.Name, "system"); err != nil {
			a.log.Warn("upstream sync failed", "upstream", u.Name, "err", err)
		}
	}
}

func (a *App) flushLastUsed() {
	defer close(a.flushDone)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if a.writer.Stopped() != nil {
				continue // the store writes nothing more
			}
			if err := a.authn.FlushLastUsed(context.Background()); err != nil {
				a.log.Warn("cannot record key last-use times", "err", err)
			}
		case <-a.stopFlush:
			return
		}
	}
}

// Close stops serving (letting requests in flight finish), records the
// stop, writes a final audit checkpoint and releases the data directory.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.ln != nil {
			// Requests in flight get a short grace; then long-lived streams
			// (MCP GET streams, held calls) are ended, so a stop never hangs
			// on a client that keeps a stream open.
			sctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
			cut := func() { a.pipeline.Drain(); a.cancelBase() }
			grace := time.AfterFunc(min(2*time.Second, a.cfg.ShutdownTimeout/2), cut)
			errs = append(errs, a.server.Shutdown(sctx))
			if a.mserver != nil {
				errs = append(errs, a.mserver.Shutdown(sctx))
			}
			grace.Stop()
			cut()
			a.pipeline.Close()
			a.gateway.Close()
			cancel()
			<-a.sweepDone
			<-a.vaultDone
			a.stopOps()
			a.vault.Close() // an unfinished data-key rotation resumes at the next start
			close(a.stopFlush)
			<-a.flushDone
			if a.writer.Stopped() == nil {
				if err := a.authn.FlushLastUsed(context.Background()); err != nil {
					errs = append(errs, err)
				}
			}
			// No call goes upstream after this; 0 open makes the stop a
			// clean one, which the next start reads nothing before.
			open := a.calls.Stop()
			rec := audit.Record{Event: audit.EventServerStop, Outcome: audit.Success, Actor: "system", Detail: map[string]any{recovery.OpenAtStop: open}}
			if _, err := a.writer.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
				errs = append(errs, err)
			}
		}
		a.release()
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// release closes what open acquired, in reverse order.
func (a *App) release() {
	if a.tracer != nil { // the spans of the last calls are sent
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.tracer.Shutdown(ctx); err != nil {
			a.log.Warn("traces not all sent at shutdown", "err", err)
		}
		cancel()
	}
	if a.webhooks != nil { // what is still queued is dropped, on record, while the writer is open
		a.webhooks.Close()
	}
	if a.alerts != nil { // likewise
		a.alerts.Close()
	}
	if a.exporter != nil {
		a.exporter.Close()
	}
	if a.vault != nil {
		a.vault.Close()
	}
	if a.hsm != nil {
		a.hsm.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.failures != nil { // what it still counts goes on record while the writer is open
		a.failures.Close()
	}
	if a.writer != nil {
		a.writer.Close()
	}
	if a.anchors != nil { // after the writer: its final checkpoint is anchored too
		a.anchors.Close()
	}
	if a.auditLog != nil {
		a.auditLog.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	if a.lockF != nil {
		a.lockF.Close()
	}
}

// openAuditLog opens the audit log, saying what a crash left cut off.
func openAuditLog(l Layout, log *slog.Logger) (*wal.Log, error) {
	al, err := wal.Open(l.AuditLog(), wal.Options{})
	if err != nil {
		var ce *wal.CorruptError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w; nothing is served from a damaged audit log: run 'ostiary audit verify --data %s' and restore the log from a backup", err, l.Dir)
		}
		return nil, err
	}
	if r := al.Recovered(); r.Segment != "" {
		log.Warn("the audit log ended in a batch cut short by a crash; it was never acknowledged and is removed",
			"segment", r.Segment, "offset", r.Offset, "bytes", r.Bytes)
	}
	return al, nil
}

// VerifyAudit verifies a data directory's audit chain offline, as its log
// holds it. pubPath names the public key to trust; empty means the one in
// the directory (auditors should keep their own copy). With index, it also
// verifies the queryable index and that it agrees with the log.
//
// anchors are files or witness URLs that serve --anchor pushed checkpoints
// to (anchorCA the CAs trusted for witnesses): a log that does not reach
// the newest checkpoint of each, or differs from it, is a broken chain (a
// data directory rolled back).
func VerifyAudit(ctx context.Context, dir, pubPath string, index bool, anchors []string, anchorCA string) (audit.Summary, error) {
	l := Layout{Dir: dir}
	if err := l.checkInitialised(); err != nil {
		return audit.Summary{}, err
	}
	if pubPath == "" {
		pubPath = l.SigningPub()
	}
	pub, err := ReadPublicKey(pubPath)
	if err != nil {
		return audit.Summary{}, err
	}
	cp, err := audit.ReadCheckpointFile(l.Checkpoint())
	if err != nil {
		return audit.Summary{}, fmt.Errorf("cannot read the latest checkpoint: %w", err)
	}
	if _, err := os.Stat(l.AuditLog()); err != nil {
		return audit.Summary{}, fmt.Errorf("no audit log at %s: %w", l.AuditLog(), err)
	}
	st, err := sqlite.Open(ctx, l.DB(), sqlite.Options{ReadOnly: true})
	if err != nil {
		return audit.Summary{}, err
	}
	defer st.Close()
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return audit.Summary{}, err
	}
	anchored, err := readAnchors(ctx, anchors, anchorCA)
	if err != nil {
		return audit.Summary{}, err
	}
	sum, err := audit.VerifyLog(ctx, l.AuditLog(), pub, cp, cps, anchored...)
	if err != nil || !index {
		return sum, err
	}
	// A running server (it holds the directory's lock) fills the index
	// behind its log: give it a moment to reach what was just verified,
	// then compare exactly that much. A stopped one's index is complete.
	running := true
	if f, err := l.lock(); err == nil {
		running = false
		f.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		head, _, err := st.AuditHead(ctx)
		if err != nil {
			return sum, err
		}
		if head >= sum.Records {
			break
		}
		if !running {
			return sum, &audit.ChainError{Seq: head + 1, Problem: fmt.Sprintf("the index holds %d records, the log %d: records are missing from the index (the tail was truncated or records removed; run 'ostiary audit reindex')", head, sum.Records)}
		}
		if time.Now().After(deadline) {
			return sum, fmt.Errorf("the index holds %d records, %d fewer than the log of the running server; try again", head, sum.Records-head)
		}
		time.Sleep(20 * time.Millisecond)
	}
	isum, err := audit.Verify(ctx, boundedIndex{st, sum.Records}, pub, cp)
	if err != nil {
		return sum, fmt.Errorf("the index: %w", err)
	}
	if isum.Records != sum.Records || isum.Head != sum.Head {
		return sum, &audit.ChainError{Seq: isum.Records, Problem: "the index differs from the log (the index was altered; run 'ostiary audit reindex')"}
	}
	sum.Indexed = isum.Records
	return sum, nil
}

// boundedIndex is the index up to record max: what a verification of the
// log covered, while a running server may be adding more.
type boundedIndex struct {
	st  *sqlite.Store
	max uint64
}

func (b boundedIndex) ScanRecords(ctx context.Context, fn func(*audit.Record) error) error {
	err := b.st.ScanRecords(ctx, func(r *audit.Record) error {
		if r.Seq > b.max {
			return errStopScan
		}
		return fn(r)
	})
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}

func (b boundedIndex) Checkpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	cps, err := b.st.Checkpoints(ctx)
	var out []audit.Checkpoint
	for _, c := range cps {
		if c.Seq <= b.max {
			out = append(out, c)
		}
	}
	return out, err
}

var errStopScan = errors.New("stop")

// ReindexAudit rebuilds a stopped server's audit index from its log: it
// first brings the index up to date as a start does (recording changes a
// crash left unapplied), then empties it and fills it again from the log.
// It returns the number of records indexed.
func ReindexAudit(ctx context.Context, dir string, log *slog.Logger) (uint64, error) {
	l := Layout{Dir: dir}
	if err := l.checkInitialised(); err != nil {
		return 0, err
	}
	lockF, err := l.lock()
	if err != nil {
		return 0, err
	}
	defer lockF.Close()
	priv, err := l.signingKey()
	if err != nil {
		return 0, err
	}
	st, err := sqlite.Open(ctx, l.DB(), sqlite.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	al, err := openAuditLog(l, log)
	if err != nil {
		return 0, err
	}
	defer al.Close()
	open := func() error {
		w, err := audit.NewWriter(ctx, audit.WriterConfig{Log: al, Store: st, Signer: priv, CheckpointPath: l.Checkpoint(),
			Logger: log, RequireCheckpoint: true})
		if err != nil {
			return err
		}
		return w.Close()
	}
	// An index that does not match the log is what reindex is for: it is
	// emptied without the reconciling start, which it cannot be trusted for.
	if err := open(); err != nil && !errors.Is(err, audit.ErrIndexMismatch) {
		return 0, err
	}
	if err := st.ResetIndex(ctx); err != nil {
		return 0, err
	}
	if err := open(); err != nil { // catches up on the whole log
		return 0, err
	}
	through, _, err := st.IndexedThrough(ctx)
	return through, err
}

// SettleAudit waits, for no longer than d, until the audit index holds
// every record logged so far, and returns how many it still lacks. Tests
// that read the index directly call it first.
func (a *App) SettleAudit(d time.Duration) uint64 { return a.writer.Settle(context.Background(), d) }

// SetStoreReadOnlyForTest makes the store refuse writes as a read-only or
// failed disk would, so tests can prove the server fails closed.
func (a *App) SetStoreReadOnlyForTest(on bool) error { return a.store.SetQueryOnlyForTest(on) }

// users finds callers for policy explain: a user's roles and grants, as
// an unscoped key of the default environment would carry them.
type users struct{ store *sqlite.Store }

func (u users) PrincipalOf(ctx context.Context, name string) (*authn.Principal, error) {
	usr, err := u.store.UserByName(ctx, name)
	if err != nil {
		return nil, err
	}
	grants, err := u.store.UserGrants(ctx, name)
	if err != nil {
		return nil, err
	}
	return &authn.Principal{User: usr.Name, Service: usr.Service, Owner: usr.Owner, Roles: usr.Roles, Environment: authn.DefaultEnvironment,
		Perms: authz.Permissions{Roles: grants}}, nil
}

// identityChanges is told of every change to users, roles and keys: the
// credential cache is dropped, and the gateway checks its open streams.
type identityChanges struct{ a *App }

func (c identityChanges) Invalidate() {
	c.a.authn.Invalidate()
	if c.a.tokens != nil {
		c.a.tokens.Invalidate()
	}
	if c.a.gateway != nil {
		c.a.gateway.IdentityChanged()
	}
}

// masterKeys returns the vault's master keys: the HSM key with
// --master-key-pkcs11 (and the key file too if one is named, while moving
// between them), else the key file (by default DIR/keys/master.key,
// created if missing).
func (a *App) masterKeys() ([]vault.KeyWrapper, error) {
	var out []vault.KeyWrapper
	if a.cfg.MasterKeyPKCS11 != "" {
		pin := a.cfg.PKCS11PIN
		if a.cfg.PKCS11PINFile != "" {
			b, err := readSecretFile(a.cfg.PKCS11PINFile)
			if err != nil {
				return nil, fmt.Errorf("HSM PIN: %w", err)
			}
			pin = strings.TrimRight(string(b), "\r\n")
		}
		k, err := hsm.Open(hsm.Config{Module: a.cfg.MasterKeyPKCS11, Token: a.cfg.PKCS11Token, Key: a.cfg.PKCS11Key, PIN: pin})
		if err != nil {
			return nil, fmt.Errorf("cannot open the vault's master key: %w", err)
		}
		a.hsm = k
		if k.Created() {
			a.log.Info("generated the vault master key in the HSM", "token", a.cfg.PKCS11Token, "key", a.cfg.PKCS11Key)
		}
		out = append(out, k)
		if a.cfg.MasterKeyFile == "" {
			return out, nil
		}
	}
	masterFile := a.cfg.MasterKeyFile
	if masterFile == "" {
		if err := a.layout.ensureMasterKey(); err != nil {
			return nil, fmt.Errorf("cannot create the vault master key: %w", err)
		}
		masterFile = a.layout.MasterKey()
	}
	master, err := ReadMasterKey(masterFile)
	if err != nil {
		return nil, err
	}
	fk, err := vault.FileKey(master)
	clear(master)
	if err != nil {
		return nil, err
	}
	return append(out, fk), nil
}
