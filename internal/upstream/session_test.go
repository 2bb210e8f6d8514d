package upstream

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// A call to a session-based upstream is one POST on its session: it
// carries the session id, the negotiated version, the identity assertion
// and the argument bytes exactly as given (the canonical bytes the call
// was decided on), under an id of its own namespace; and the upstream's
// ping on the call's response stream is answered on the session.
func TestCallOnSession(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "s25", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in map[string]any) (*mcp.CallToolResult, map[string]any, error) {
		if err := req.Session.Ping(ctx, nil); err != nil {
			return nil, nil, err
		}
		return nil, in, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil) // answers calls on an event stream
	var mu sync.Mutex
	var calls []*http.Request
	var bodies [][]byte
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if bytes.Contains(b, []byte(`"tools/call"`)) {
			mu.Lock()
			calls, bodies = append(calls, r), append(bodies, b)
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: nopAuditor{}, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := spec.Upstream{Name: "s25", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	args := json.RawMessage(`{"n":1e2,"s":"\u00e9"}`) // not what a re-encoding would send
	res, err := p.Call(context.Background(), Caller{User: "alice", Legacy: true}, u, ToolCall{Name: "echo", Arguments: args}, &Relay{})
	if err != nil || res.IsError {
		t.Fatalf("call: %+v %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 {
		t.Fatalf("%d tools/call requests, want 1", len(calls))
	}
	r := calls[0]
	if r.Header.Get("Mcp-Session-Id") == "" || r.Header.Get("Mcp-Protocol-Version") != legacyVersion || r.Header.Get(assertion.Header) == "" {
		t.Errorf("headers: session %q, version %q, identity set %t", r.Header.Get("Mcp-Session-Id"), r.Header.Get("Mcp-Protocol-Version"), r.Header.Get(assertion.Header) != "")
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Params struct {
			Arguments json.RawMessage `json:"arguments"`
		} `json:"params"`
	}
	if err := json.Unmarshal(bodies[0], &msg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.Params.Arguments, args) {
		t.Errorf("arguments forwarded as %s, want the bytes given, %s", msg.Params.Arguments, args)
	}
	if !bytes.HasPrefix(msg.ID, []byte(`"`+sessionIDPrefix)) {
		t.Errorf("request id %s: want a string of Ostiary's namespace", msg.ID)
	}
}

// A call given up is cancelled on the session (notifications/cancelled
// naming it), as the SDK client would: the upstream's handler sees its
// context end.
func TestCallOnSessionCancelled(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "s25", Version: "1"}, nil)
	started, ended := make(chan struct{}), make(chan struct{})
	mcp.AddTool(srv, &mcp.Tool{Name: "hang"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
		close(started)
		select {
		case <-ctx.Done():
			close(ended)
		case <-time.After(30 * time.Second):
		}
		return nil, nil, ctx.Err()
	})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	defer hs.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: nopAuditor{}, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := spec.Upstream{Name: "s25", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if _, err := p.Call(ctx, Caller{User: "alice", Legacy: true}, u, ToolCall{Name: "hang"}, &Relay{}); err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream's call was not cancelled")
	}
}
