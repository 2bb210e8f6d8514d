package app_test

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// An upstream that hangs, fails, answers garbage, floods or resets costs a
// bounded time and memory, is recorded, and does not stop the gateway from
// serving the next call.
func TestHostileUpstream(t *testing.T) {
	s := apptest.StartWith(t, func(c *config.Config) { c.CallTimeout = 2 * time.Second })
	url := apptest.NewHostileUpstream(t)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "bad", "url": url, "allow_private": true}), http.StatusCreated)
	setup(t, s, "brave", []string{"invoke:bad.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tool := range []string{"hang", "boom", "garbage", "flood", "reset"} {
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad." + tool})
		took := time.Since(start)
		if err == nil && !res.IsError {
			t.Errorf("%s: succeeded: %+v", tool, res)
		}
		if took > 5*time.Second {
			t.Errorf("%s: took %s", tool, took)
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 64<<20 {
			t.Errorf("%s: allocated %d MB", tool, grew>>20)
		}
		if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad.ok"}); err != nil || res.IsError {
			t.Fatalf("after %s the gateway stopped serving: %+v %v", tool, res, err)
		}
	}
	failed := records(t, s, audit.Query{Event: "tool-result", Outcome: audit.Failed})
	if len(failed) != 5 {
		t.Errorf("failed tool-result records: %d, want 5", len(failed))
	}
}
