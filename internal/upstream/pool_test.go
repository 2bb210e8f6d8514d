package upstream

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

type nopAuditor struct{}

func (nopAuditor) Write(_ context.Context, e audit.Entry) (audit.Record, error) { return e.Record, nil }

// A session stays open while a call uses it, however long the call takes
// compared with the idle timeout; it is reaped once idle.
func TestPoolDoesNotReapBusySessions(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "slow", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
		select {
		case <-time.After(2500 * time.Millisecond):
			return nil, map[string]any{"done": true}, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer hs.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: nopAuditor{}, Logger: slog.New(slog.DiscardHandler), Now: time.Now, IdleAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := spec.Upstream{Name: "slow", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	c := Caller{User: "alice"}
	res, err := p.Call(context.Background(), c, u, ToolCall{Name: "slow"}, nil)
	if err != nil || res.IsError {
		t.Fatalf("a call longer than the idle timeout failed: %+v %v", res, err)
	}
	p.mu.Lock()
	kept := len(p.sessions)
	p.mu.Unlock()
	if kept != 1 {
		t.Fatal("the session was reaped while its call was running")
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.sessions) == 0
	}, "the idle session was not reaped")
}

// After repeated transport failures an upstream's circuit opens: calls fail
// at once without reaching it, the opening is recorded, and after the
// cooldown one trial call closes it again.
func TestCircuitBreaker(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "flaky", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "t"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, map[string]any, error) {
		return nil, map[string]any{"ok": true}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	var failing atomic.Bool
	var hits atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	rec := &recordingAuditor{}
	clock := testutil.NewClock(time.Now()) // the breaker's cooldown runs on the pool's clock
	p, _ := NewPool(PoolConfig{Signer: signer, Auditor: rec, Logger: slog.New(slog.DiscardHandler), Now: clock.Now, BreakerCooldown: 200 * time.Millisecond})
	defer p.Close()
	u := spec.Upstream{Name: "flaky", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	users := []Caller{{User: "alice"}, {User: "bob"}} // failures of two users open the shared circuit
	n := 0
	call := func() error {
		n++
		_, err := p.Call(context.Background(), users[n%2], u, ToolCall{Name: "t"}, nil)
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	for range breakerThreshold {
		if call() == nil {
			t.Fatal("a failing upstream answered")
		}
	}
	before := hits.Load()
	if err := call(); err == nil || !strings.Contains(err.Error(), "circuit breaker") || hits.Load() != before {
		t.Fatalf("open circuit: %v (upstream hit %d more times)", err, hits.Load()-before)
	}
	if rec.count(EventCircuitOpen) != 1 {
		t.Errorf("circuit-open records: %d", rec.count(EventCircuitOpen))
	}
	failing.Store(false)
	clock.Advance(250 * time.Millisecond)
	if err := call(); err != nil {
		t.Fatalf("after the cooldown the trial call failed: %v", err)
	}
	if err := call(); err != nil {
		t.Fatalf("the circuit did not close: %v", err)
	}
}

type recordingAuditor struct {
	mu     sync.Mutex
	events []string
}

func (r *recordingAuditor) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	r.mu.Lock()
	r.events = append(r.events, e.Event)
	r.mu.Unlock()
	return e.Record, nil
}

func (r *recordingAuditor) count(event string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == event {
			n++
		}
	}
	return n
}

// Forgetting an upstream (it was removed) closes every user's session to
// it and drops its transport, breaker and slots; other upstreams keep theirs.
func TestPoolForget(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "ping"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
		return nil, map[string]any{"ok": true}, nil
	})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer hs.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: nopAuditor{}, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	gone := spec.Upstream{Name: "gone", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	kept := spec.Upstream{Name: "kept", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	for _, c := range []Caller{{User: "alice"}, {User: "bob"}} {
		for _, u := range []spec.Upstream{gone, kept} {
			if _, err := p.Call(context.Background(), c, u, ToolCall{Name: "ping"}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.Forget("gone")
	p.mu.Lock()
	var left []string
	for k := range p.sessions {
		left = append(left, k.upstream)
	}
	p.mu.Unlock()
	if len(left) != 2 || left[0] != "kept" || left[1] != "kept" {
		t.Errorf("sessions left: %v", left)
	}
	count := func(m *sync.Map, prefix string) (n int) {
		m.Range(func(k, _ any) bool {
			if strings.HasPrefix(k.(string), prefix) {
				n++
			}
			return true
		})
		return n
	}
	if count(&p.transports, "gone/") != 0 || count(&p.breakers, "gone") != 0 || count(&p.slots, "gone") != 0 {
		t.Error("state of the forgotten upstream remains")
	}
	if count(&p.transports, "kept/") != 1 || count(&p.breakers, "kept") != 1 {
		t.Error("the other upstream lost its state")
	}
}

// A stdio process that prints a secret from its environment on stderr gets
// it redacted from the operational log, and long lines are cut.
func TestStderrIsRedacted(t *testing.T) {
	var buf strings.Builder
	l := &lineLogger{log: slog.New(slog.NewTextHandler(&buf, nil)), upstream: "u", user: "alice",
		known: vault.Known{"tok": {Value: []byte("s3cret-token-value")}}}
	l.Write([]byte("starting with s3cret-tok"))
	l.Write([]byte("en-value\nsecond line\n"))
	l.Write([]byte(strings.Repeat("x", 5000)))
	out := buf.String()
	if strings.Contains(out, "s3cret-token-value") || !strings.Contains(out, "[REDACTED secret:tok]") || !strings.Contains(out, "second line") {
		t.Errorf("log: %s", out)
	}
	if strings.Count(out, "upstream stderr") != 3 || strings.Contains(out, strings.Repeat("x", 1025)) {
		t.Errorf("long line not cut to 1024 bytes: %d records", strings.Count(out, "upstream stderr"))
	}
}

type brokenSigner struct{}

func (brokenSigner) Sign(assertion.Claims) (string, error) {
	return "", errors.New("signing key unavailable")
}

// If the identity assertion cannot be signed, nothing is sent: before, the
// request went upstream with an empty Ostiary-Identity header, which an
// upstream could take for a request of nobody in particular.
func TestUnsignedRequestRefused(t *testing.T) {
	var got atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer hs.Close()
	p, err := NewPool(PoolConfig{Signer: brokenSigner{}, Auditor: nopAuditor{}, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := spec.Upstream{Name: "up", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	_, err = p.Call(context.Background(), Caller{User: "alice"}, u, ToolCall{Name: "x"}, nil)
	if err == nil || !Refused(err) {
		t.Errorf("call with an unsignable assertion: %v (refused: %v)", err, Refused(err))
	}
	if n := got.Load(); n != 0 {
		t.Errorf("the upstream received %d requests without an identity assertion", n)
	}
}
