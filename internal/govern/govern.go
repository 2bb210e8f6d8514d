// Package govern is the governance pipeline: what happens to a request
// once the front door (internal/gateway) has authenticated it and decoded
// it. A call passes through stages, each in its own file, composed in
// pipeline.go in the order PRODUCT.md gives:
//
//	resolve      one catalog snapshot names the target and its upstream (resolve.go)
//	authorize    the caller's invoke grant; a hidden target looks missing (authorize.go)
//	kill switch  no switch covers the user, key, upstream or tool (kill.go)
//	validate     arguments strict and canonical, the pinned schema, a reviewed definition (validate.go, args.go)
//	continue     a 2026-07-28 requestState opened for this caller and call (continue.go)
//	decide       the policy in force: allow, approve or deny, with a risk score (decide.go)
//	approve      a held call waits for other people's votes (approve.go)
//	record       the decision is durable before anything is forwarded (record.go)
//	dispatch     the upstream is called as the user, bounded and retried (dispatch.go)
//	outcome      what happened is recorded, secrets redacted, before the answer leaves (outcome.go)
//
// Tools, prompts, resources and completion share the stages they need.
package govern

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/metrics"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/quota"
	"github.com/ostiary/ostiary/internal/tracing"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Catalog provides the current tool catalog.
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// Caller executes requests on upstreams as a user (upstream.Pool).
type Caller interface {
	Call(ctx context.Context, c upstream.Caller, u spec.Upstream, call upstream.ToolCall, relay *upstream.Relay) (*mcp.CallToolResult, error)
	GetPrompt(ctx context.Context, c upstream.Caller, u spec.Upstream, get upstream.PromptGet) (*mcp.GetPromptResult, error)
	Complete(ctx context.Context, c upstream.Caller, u spec.Upstream, params *mcp.CompleteParams) (*mcp.CompleteResult, error)
	ReadResource(ctx context.Context, c upstream.Caller, u spec.Upstream, uri string, cont upstream.Continuation) (*mcp.ReadResourceResult, error)
}

// Config holds the pipeline's dependencies and settings.
type Config struct {
	Catalog      Catalog
	Upstreams    Caller
	Auditor      audit.Appender
	Kill         KillSwitch // consulted on every call; the pipeline cuts the calls a new switch covers
	Logger       *slog.Logger
	Now          func() time.Time
	CallTimeout  time.Duration // bound on one upstream tool call; default 5m
	CallsPerUser int           // tool calls one user may have in flight, waiting for approval included; default 32
	Policy       Policies      // decides every tools/call
	History      *policy.History
	Users        Users // for explain; optional
	Approvals    Approvals
	ApprovalWait time.Duration // how long a held call waits (0: answer at once); rules may say otherwise
	// ElicitURLAllow lists the hosts a URL-mode elicitation may point the
	// user at (nil: any https host).
	ElicitURLAllow *spec.HostAllow
	Metrics        *metrics.Metrics // nil: none
	Tracer         *tracing.Tracer  // nil: no tracing
}

// Pipeline governs the requests the front door hands it.
type Pipeline struct {
	cfg         Config
	calls       inflight // calls on their way upstream, for kill switches to cut
	history     *policy.History
	states      *sealer        // requestState of relayed input_required results
	parkedCalls sync.Map       // token → *parkedCall: 2026-07-28 calls that may ask their client
	parked      *quota.PerUser // calls waiting on questions, by user
	userCalls   *quota.PerUser // tool calls in flight, by user
	life        context.Context
	end         context.CancelFunc
	draining    context.Context // ends with Drain: every call under way is cut then
	drain       context.CancelFunc
	detached    sync.WaitGroup // the goroutines of calls that outlive their request
	stopping    atomic.Bool    // Drain was called: calls cut from now on are cut by the stop
}

// New returns the pipeline, registered with the kill switch as what cuts
// the calls in flight a new switch covers.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Catalog == nil || cfg.Upstreams == nil || cfg.Auditor == nil || cfg.Kill == nil || cfg.Logger == nil || cfg.Now == nil || cfg.Policy == nil || cfg.Approvals == nil {
		return nil, errors.New("govern: missing dependency")
	}
	if cfg.ApprovalWait < 0 {
		return nil, errors.New("govern: negative approval wait")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Minute
	}
	if cfg.CallsPerUser <= 0 {
		cfg.CallsPerUser = 32
	}
	pl := &Pipeline{cfg: cfg, history: cfg.History, parked: quota.New(maxParkedPerUser), userCalls: quota.New(cfg.CallsPerUser)}
	if pl.history == nil {
		pl.history = policy.NewHistory()
	}
	var err error
	if pl.states, err = newSealer(); err != nil {
		return nil, err
	}
	pl.life, pl.end = context.WithCancel(context.Background())
	pl.draining, pl.drain = context.WithCancel(context.Background())
	cfg.Kill.SetCutter(pl)
	return pl, nil
}

// Drain tells the pipeline that the server is stopping and cuts every
// call under way: each is answered "the gateway is stopping" and recorded
// as gateway-stopping, not as an upstream failure, before the stop's own
// record. (Cancelling the requests' base context alone would not reach
// every call: the SDK runs a 2025-era session's calls in the session's
// context, not the request's.)
func (pl *Pipeline) Drain() {
	pl.stopping.Store(true)
	pl.drain()
}

// Stopping reports whether Drain or Close was called.
func (pl *Pipeline) Stopping() bool { return pl.stopping.Load() || pl.life.Err() != nil }

// Close ends the calls that outlived their requests (parked calls waiting
// for a client's answer) and waits, a few seconds at most, for their
// outcomes to be recorded.
func (pl *Pipeline) Close() {
	pl.drain()
	pl.end()
	done := make(chan struct{})
	go func() { pl.detached.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		pl.cfg.Logger.Warn("calls still under way at shutdown")
	}
}
