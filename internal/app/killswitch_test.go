package app_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/testutil"
)

func engage(t *testing.T, s *apptest.Server, kind, target string) killswitch.Switch {
	t.Helper()
	r := s.Do("POST", "/api/v1/killswitches", s.AdminKey, map[string]any{"kind": kind, "target": target, "reason": "incident 42"})
	mustStatus(t, r, http.StatusCreated)
	var sw killswitch.Switch
	r.JSON(t, &sw)
	return sw
}

func release(t *testing.T, s *apptest.Server, id string) {
	t.Helper()
	mustStatus(t, s.Do("POST", "/api/v1/killswitches/"+id+"/release", s.AdminKey, map[string]any{"reason": "fixed"}), http.StatusOK)
}

func TestKillSwitch(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddSlow()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*"}, "alice", false)
	setup(t, s, "payer2", []string{"invoke:fin.lookup"}, "bob", false)
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	bobKey, _ := newKey(t, s, map[string]any{"user": "bob"})
	alice, err := s.Client(t, aliceKey, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lookup := &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}}

	// A tool switch cuts the call in flight, hides the tool and refuses it.
	done := make(chan error, 1)
	go func() {
		_, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.slow"})
		done <- err
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return len(up.Calls()) > 0 }, "the call did not reach the upstream")
	sw := engage(t, s, "tool", "fin.slow")
	select {
	case err := <-done:
		if err == nil {
			t.Error("the cut call succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the kill switch did not cut the call in flight")
	}
	select {
	case <-up.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("the cut call was not cancelled upstream")
	}
	if got := toolNames(t, alice); slices.Contains(got, "fin.slow") || !slices.Contains(got, "fin.lookup") {
		t.Errorf("tools under a tool switch: %v", got)
	}
	if _, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.slow"}); err == nil {
		t.Error("a killed tool was callable")
	}
	release(t, s, sw.ID)
	if got := toolNames(t, alice); !slices.Contains(got, "fin.slow") {
		t.Errorf("tools after release: %v", got)
	}

	// An upstream switch hides all of its tools.
	sw = engage(t, s, "upstream", "fin")
	if got := toolNames(t, alice); !slices.Equal(got, []string{"approval_status", "discover_tools"}) {
		t.Errorf("tools under an upstream switch: %v", got)
	}
	release(t, s, sw.ID)

	// A user switch suspends every request of that user, through any key.
	sw = engage(t, s, "user", "alice")
	if _, err := alice.CallTool(ctx, lookup); err == nil {
		t.Error("a suspended user called a tool")
	}
	bob, err := s.Client(t, bobKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CallTool(ctx, lookup); err != nil {
		t.Errorf("another user was stopped: %v", err)
	}
	release(t, s, sw.ID)

	// --all stops everyone.
	sw = engage(t, s, "all", "")
	if _, err := bob.CallTool(ctx, lookup); err == nil {
		t.Error("a request passed under --all")
	}
	release(t, s, sw.ID)
	bob, err = s.Client(t, bobKey, "") // a 403 closes the SDK client; reconnect
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CallTool(ctx, lookup); err != nil {
		t.Errorf("after release: %v", err)
	}

	// A reason is required, and the grant to operate switches.
	mustStatus(t, s.Do("POST", "/api/v1/killswitches", s.AdminKey, map[string]any{"kind": "all", "reason": " "}), http.StatusBadRequest)
	mustStatus(t, s.Do("POST", "/api/v1/killswitches", bobKey, map[string]any{"kind": "tool", "target": "fin.lookup", "reason": "x"}), http.StatusForbidden)
	if recs := records(t, s, audit.Query{Event: killswitch.EventEngage, Outcome: audit.Success}); len(recs) != 4 || recs[0].Detail["reason"] != "incident 42" {
		t.Errorf("engage records: %+v", recs)
	}
	if recs := records(t, s, audit.Query{Event: "tool-call", Actor: "alice", Outcome: audit.Denied}); len(recs) == 0 || recs[0].Reason != "killswitch" {
		t.Errorf("killed call record: %+v", recs)
	}
}
