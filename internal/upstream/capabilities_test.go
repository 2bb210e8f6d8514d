//lint:file-ignore SA1019 sampling and roots are deprecated as of 2026-07-28 (SEP-2577) but still relayed; this test checks they are declared.

package upstream

import (
	"context"
	"crypto/ed25519"
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

// The catalog's sync session and a user's call session declare the same
// client capabilities: every one Ostiary relays (sampling, elicitation in
// form and URL modes, roots). A server that registers tools by what its
// client declares (server-everything's trigger-elicitation-request) would
// otherwise list fewer tools at the sync than it offers at a call, and the
// catalog would never hold them.
// Failed before: the sync session declared roots only.
func TestSessionsDeclareRelayedCapabilities(t *testing.T) {
	var mu sync.Mutex
	var declared []*mcp.ClientCapabilities
	srv := mcp.NewServer(&mcp.Implementation{Name: "caps", Version: "1"}, &mcp.ServerOptions{
		InitializedHandler: func(_ context.Context, req *mcp.InitializedRequest) {
			mu.Lock()
			declared = append(declared, req.Session.InitializeParams().Capabilities)
			mu.Unlock()
		}})
	mcp.AddTool(srv, &mcp.Tool{Name: "t"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, map[string]any, error) {
		return nil, map[string]any{}, nil
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
	u := spec.Upstream{Name: "caps", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true}
	if _, err := p.List(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Call(context.Background(), Caller{User: "alice"}, u, ToolCall{Name: "t"}, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(declared) != 2 {
		t.Fatalf("%d sessions initialized, want 2 (sync, call)", len(declared))
	}
	for i, session := range []string{"sync", "call"} {
		c := declared[i]
		switch {
		case c == nil:
			t.Errorf("%s session declared no capabilities", session)
		case c.Sampling == nil:
			t.Errorf("%s session does not declare sampling", session)
		case c.Elicitation == nil || c.Elicitation.Form == nil || c.Elicitation.URL == nil:
			t.Errorf("%s session declares elicitation %+v, want form and url", session, c.Elicitation)
		case c.RootsV2 == nil && !c.Roots.ListChanged:
			t.Errorf("%s session does not declare roots", session)
		}
	}
}
