package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// NewHostileUpstream starts an MCP server whose tools misbehave at the HTTP
// level when called: "hang" never answers, "boom" answers 500, "garbage"
// answers malformed JSON-RPC, "flood" streams 100 MB, "drip" sends a byte
// every 50 ms for two minutes, "reset" drops the
// connection, "big" answers a well-formed 8 MiB result. "ok" behaves. Everything else (initialize, tools/list) is a
// real SDK server, so the upstream registers normally.
func NewHostileUpstream(t testing.TB) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "hostile", Version: "1"}, nil)
	for _, name := range []string{"hang", "boom", "garbage", "flood", "drip", "reset", "ok", "big"} {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: "misbehaves: " + name},
			func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
				return nil, map[string]any{"fine": true}, nil
			})
	}
	// "flaky" (read-only) and "flaky_write" (not) answer 503 to their first
	// two calls, then behave.
	mcp.AddTool(srv, &mcp.Tool{Name: "flaky", Description: "fails twice, read-only", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
			return nil, map[string]any{"fine": true}, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "flaky_write", Description: "fails twice, writes"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
			return nil, map[string]any{"fine": true}, nil
		})
	var mu sync.Mutex
	failures := map[string]int{}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		call := func(name string) bool {
			return bytes.Contains(body, []byte(`"tools/call"`)) && bytes.Contains(body, []byte(`"name":"`+name+`"`))
		}
		switch {
		case call("hang"):
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		case call("boom"):
			http.Error(w, "internal error", http.StatusInternalServerError)
		case call("garbage"):
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"jsonrpc":"2.0","id":`))
		case call("flood"):
			w.Header().Set("Content-Type", "application/json")
			chunk := []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"` + strings.Repeat("A", 1<<20))
			w.Write(chunk)
			fill := chunk[len(chunk)-1<<20:] // reused: the test measures the gateway's allocations, not ours
			for i := 0; i < 100 && r.Context().Err() == nil; i++ {
				if _, err := w.Write(fill); err != nil {
					return
				}
			}
		case call("big"): // a well-formed 8 MiB result
			w.Header().Set("Content-Type", "application/json")
			var req struct {
				ID json.RawMessage `json:"id"`
			}
			json.Unmarshal(body, &req)
			w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"content":[{"type":"text","text":"` + strings.Repeat("B", 8<<20) + `"}]}}`))
		case call("drip"):
			// A byte every 50 ms: always almost there, never done.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			for i := 0; i < 2400 && r.Context().Err() == nil; i++ {
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
		case call("flaky") || call("flaky_write"):
			name := "flaky"
			if call("flaky_write") {
				name = "flaky_write"
			}
			mu.Lock()
			failures[name]++
			n := failures[name]
			mu.Unlock()
			if n <= 2 {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		case call("reset"):
			if hj, ok := w.(http.Hijacker); ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
			}
		default:
			h.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL + "/mcp"
}
