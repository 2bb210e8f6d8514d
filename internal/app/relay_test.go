//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still relayed; these tests prove it.

package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

type inbox struct {
	mu       sync.Mutex
	progress []*mcp.ProgressNotificationParams
	logs     []*mcp.LoggingMessageParams
}

func (b *inbox) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			b.mu.Lock()
			b.progress = append(b.progress, r.Params)
			b.mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			b.mu.Lock()
			b.logs = append(b.logs, r.Params)
			b.mu.Unlock()
		},
	}
}

func (b *inbox) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.progress), len(b.logs)
}

// Progress and log messages of a call reach the client that made it, under
// its own progress token, and no one else; cancelling the call cancels it
// upstream.
func TestGatewayRelaysProgressLogsAndCancellation(t *testing.T) {
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddSlow()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "slowpoke", []string{"invoke:fin.*"}, "alice", false)
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	aliceKey2, _ := newKey(t, s, map[string]any{"user": "alice"})

	var mine, other inbox
	alice, err := s.ClientWith(t, aliceKey, "2025-11-25", mine.options())
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := s.ClientWith(t, aliceKey2, "2025-11-25", other.options())
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range []*mcp.ClientSession{alice, bystander} {
		if err := cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.slow", Meta: mcp.Meta{"progressToken": "mine-1"}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, l := mine.counts()
		if p == 2 && l == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayed %d progress and %d log messages, want 2 and 1", p, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mine.mu.Lock()
	if mine.progress[0].ProgressToken != "mine-1" || mine.progress[1].Progress != 2 || mine.logs[0].Data != "working on it" {
		t.Errorf("relayed %+v / %+v", mine.progress[0], mine.logs[0])
	}
	mine.mu.Unlock()
	cancel()
	select {
	case <-up.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the call did not cancel it upstream")
	}
	<-done
	if p, l := other.counts(); p != 0 || l != 0 {
		t.Errorf("another client received %d progress and %d log messages", p, l)
	}
}

// In the 2026-07-28 era progress arrives on the request's own stream.
func TestGatewayRelaysProgressModern(t *testing.T) {
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", true)
	up.AddSlow()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "slowpoke", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	var mine inbox
	cs, err := s.ClientWith(t, key, "", mine.options())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cs.CallTool(ctx, &mcp.CallToolParams{Name: "fin.slow", Meta: mcp.Meta{"progressToken": "m-1"}})
	deadline := time.Now().Add(10 * time.Second)
	for p, _ := mine.counts(); p < 2; p, _ = mine.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("relayed %d progress notifications, want 2", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-up.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the call did not cancel it upstream")
	}
}

// An upstream's elicitation during a call reaches the client that made the
// call, and is audited.
func TestGatewayRelaysElicitation(t *testing.T) {
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddAsker()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "askers", []string{"invoke:fin.ask"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	var asked int
	alice, err := s.ClientWith(t, key, "2025-11-25", &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked++
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask"})
	if err != nil || res.IsError {
		t.Fatalf("ask: %+v %v", res, err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if asked != 1 || !strings.Contains(string(b), `"name":"Ada"`) {
		t.Errorf("elicitation relayed %d times, result %s", asked, b)
	}
	recs := records(t, s, audit.Query{Event: "upstream-request"})
	if len(recs) != 1 || recs[0].Actor != "alice" || recs[0].Outcome != audit.Success || recs[0].Detail["method"] != "elicitation/create" {
		t.Errorf("upstream-request records: %+v", recs)
	}
}
