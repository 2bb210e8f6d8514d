package app_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// An upstream that hangs, fails, answers garbage, floods, drips or resets
// costs a bounded time and memory, is recorded, and does not stop the
// gateway from serving the next call, or another user meanwhile.
func TestHostileUpstream(t *testing.T) { // not parallel: it measures the process's heap
	s := apptest.StartWith(t, func(c *config.Config) { c.CallTimeout = 2 * time.Second })
	url := apptest.NewHostileUpstream(t)
	cs, _ := userOn(t, s, "alice", map[string]any{"name": "bad", "url": url, "allow_private": true})
	// Bob uses a healthy upstream meanwhile.
	good := apptest.NewUpstream(t, s, "good", false)
	bob, _ := userOn(t, s, "bob", map[string]any{"name": "good", "url": good.URL, "allow_private": true})
	ctx := context.Background()
	for _, tool := range []string{"hang", "boom", "garbage", "flood", "drip", "reset"} {
		bobDone := make(chan error, 1)
		go func() {
			res, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "good.lookup", Arguments: map[string]any{"id": "1"}})
			if err == nil && res.IsError {
				err = fmt.Errorf("error result: %+v", res.Content)
			}
			bobDone <- err
		}()
		runtime.GC()
		peak := heapPeak(t)
		start := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad." + tool})
		took := time.Since(start)
		held := peak()
		if err == nil && !res.IsError {
			t.Errorf("%s: succeeded: %+v", tool, res)
		}
		if took > 5*time.Second {
			t.Errorf("%s: took %s", tool, took)
		}
		// The flood is 100 MB; the gateway stops reading at 16 MiB. The
		// SDK's client buffers a JSON reply whole (io.ReadAll), so the heap
		// briefly holds the capped reply, its last smaller copy and garbage
		// not yet collected — well under the flood, which is what we assert.
		if held > 64<<20 {
			t.Errorf("%s: the heap grew by %d MB during the call", tool, held>>20)
		}
		t.Logf("%s: heap grew by %d MB, took %s", tool, held>>20, took.Round(time.Millisecond))
		if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad.ok"}); err != nil || res.IsError {
			t.Fatalf("after %s the gateway stopped serving: %+v %v", tool, res, err)
		}
		if err := <-bobDone; err != nil {
			t.Errorf("while alice's upstream misbehaved (%s), bob's call failed: %v", tool, err)
		}
	}
	failed := records(t, s, audit.Query{Event: "tool-result", Outcome: audit.Failed})
	if len(failed) != 6 {
		t.Errorf("failed tool-result records: %d, want 6", len(failed))
	}
}

// heapPeak samples the live heap every millisecond until the returned
// function is called, which reports the largest growth over the first sample.
func heapPeak(t *testing.T) func() int64 {
	t.Helper()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() int64 { metrics.Read(sample); return int64(sample[0].Value.Uint64()) }
	base := read()
	done, result := make(chan struct{}), make(chan int64)
	go func() {
		var most int64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			most = max(most, read()-base)
			select {
			case <-done:
				result <- max(most, read()-base)
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}

// A read-only tool whose upstream fails to answer is tried again, with
// backoff; a tool that may write is not: the failure goes to the client.
func TestRetryIdempotentOnly(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	url := apptest.NewHostileUpstream(t)
	cs, _ := userOn(t, s, "alice", map[string]any{"name": "bad", "url": url, "allow_private": true})
	ctx := context.Background()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad.flaky"})
	if err != nil || res.IsError {
		t.Fatalf("read-only tool after two failures: %+v %v", res, err)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad.flaky_write"})
	if err == nil && !res.IsError {
		t.Fatalf("a tool that may write was retried: %+v", res)
	}
	for _, r := range records(t, s, audit.Query{Event: "tool-result"}) {
		switch r.Target {
		case "tool:bad.flaky":
			if r.Outcome != audit.Success || fmt.Sprint(r.Detail["attempts"]) != "3" {
				t.Errorf("read-only result record: %s %v", r.Outcome, r.Detail)
			}
		case "tool:bad.flaky_write":
			if r.Outcome != audit.Failed || r.Detail["attempts"] != nil {
				t.Errorf("write result record: %s %v", r.Outcome, r.Detail)
			}
		}
	}
}

// Timeouts per upstream and per tool: the tightest applies, and the
// server's bound caps them all.
func TestCallTimeouts(t *testing.T) { // not parallel: it bounds how long calls take
	s := apptest.StartWith(t, func(c *config.Config) { c.CallTimeout = 3 * time.Second })
	url := apptest.NewHostileUpstream(t)
	for _, bad := range []string{"soon", "50ms", "-1s", "25h"} {
		if r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "bad", "url": url, "allow_private": true, "call_timeout": bad}); r.Status != http.StatusBadRequest {
			t.Errorf("call_timeout %q: %d %s", bad, r.Status, r.Body)
		}
	}
	cs, key := userOn(t, s, "alice", map[string]any{"name": "bad", "url": url, "allow_private": true, "call_timeout": "1s"})
	took := func() time.Duration {
		start := time.Now()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "bad.hang"})
		if err == nil && !res.IsError {
			t.Fatalf("hang succeeded: %+v", res)
		}
		return time.Since(start)
	}
	setTimeout := func(d string, want int) {
		t.Helper()
		mustStatus(t, s.Do("POST", "/api/v1/tools/timeout", s.AdminKey, map[string]any{"tool": "bad.hang", "timeout": d}), want)
	}
	if d := took(); d < time.Second || d > 2500*time.Millisecond {
		t.Errorf("upstream timeout 1s: took %s", d)
	}
	setTimeout("200ms", http.StatusOK)
	if d := took(); d < 200*time.Millisecond || d > 900*time.Millisecond {
		t.Errorf("tool timeout 200ms: took %s", d)
	}
	setTimeout("2s", http.StatusOK) // looser than its upstream's: the upstream's applies
	if d := took(); d < time.Second || d > 1900*time.Millisecond {
		t.Errorf("tool 2s under upstream 1s: took %s", d)
	}
	setTimeout("0", http.StatusOK)
	setTimeout("soon", http.StatusBadRequest)
	setTimeout("10ms", http.StatusBadRequest)
	mustStatus(t, s.Do("POST", "/api/v1/tools/timeout", s.AdminKey, map[string]any{"tool": "bad.nope", "timeout": "1s"}), http.StatusNotFound)
	mustStatus(t, s.Do("POST", "/api/v1/tools/timeout", key, map[string]any{"tool": "bad.hang", "timeout": "1s"}), http.StatusForbidden)
	list := s.Do("GET", "/api/v1/upstreams", s.AdminKey, nil)
	if !strings.Contains(string(list.Body), `"call_timeout":"1s"`) {
		t.Errorf("upstream listing: %s", list.Body)
	}
	if n := len(records(t, s, audit.Query{Event: "tool-timeout-set"})); n != 7 {
		t.Errorf("tool-timeout-set records: %d, want 7", n)
	}
}

// userOn registers the upstream described by body and returns a client
// (and the key) of a new user who may invoke its tools.
func userOn(t *testing.T, s *apptest.Server, user string, body map[string]any) (*mcp.ClientSession, string) {
	t.Helper()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, body), http.StatusCreated)
	setup(t, s, user+"-role", []string{"invoke:" + body["name"].(string) + ".*"}, user, false)
	key, _ := newKey(t, s, map[string]any{"user": user})
	cs, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	return cs, key
}
