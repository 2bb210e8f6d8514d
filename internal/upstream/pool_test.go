package upstream

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/audit"
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
	u := Upstream{Name: "slow", Kind: HTTP, URL: hs.URL, AllowPrivate: true}
	c := Caller{User: "alice"}
	res, err := p.Call(context.Background(), c, u, &mcp.CallToolParams{Name: "slow"}, nil)
	if err != nil || res.IsError {
		t.Fatalf("a call longer than the idle timeout failed: %+v %v", res, err)
	}
	p.mu.Lock()
	kept := len(p.sessions)
	p.mu.Unlock()
	if kept != 1 {
		t.Fatal("the session was reaped while its call was running")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.sessions)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle session was not reaped")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
