package app_test

// Every refusal recorded, every answer honest: how a call ended is its
// own reason on the tool-result record, and what the client is told says
// what really happened.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
)

func resultReason(t *testing.T, s *apptest.Server, tool string) audit.Record {
	t.Helper()
	recs := records(t, s, audit.Query{Event: "tool-result", Target: "tool:" + tool})
	if len(recs) == 0 {
		t.Fatalf("no tool-result record of %s", tool)
	}
	return recs[0]
}

// timeout, refused-by-upstream and client-cancelled are told apart on
// record (before, all three were upstream-error), every result carries its
// size, and the timed-out caller is told it was the time limit.
func TestHostileOutcomesDistinct(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.CallTimeout = time.Second })
	cs, _ := userOn(t, s, "alice", map[string]any{"name": "bad", "url": apptest.NewHostileUpstream(t), "allow_private": true})
	ctx := context.Background()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "bad.hang"})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "time limit") {
		t.Errorf("hang: %+v %v", res, err)
	}
	if r := resultReason(t, s, "bad.hang"); r.Reason != "timeout" {
		t.Errorf("hang recorded as %s", r.Reason)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	cs.CallTool(cctx, &mcp.CallToolParams{Name: "bad.hang"})
	cancel()
	testutil.Eventually(t, 5*time.Second, func() bool { return resultReason(t, s, "bad.hang").Reason == "client-cancelled" },
		"a cancelled call is not recorded as client-cancelled")

	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*"}, "bob", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	bc, err := s.Client(t, bob, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bc.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}}); err != nil {
		t.Fatal(err)
	}
	up.Remove("delete_all") // the upstream now refuses calls of it
	bc.CallTool(ctx, &mcp.CallToolParams{Name: "fin.delete_all"})
	if r := resultReason(t, s, "fin.delete_all"); r.Reason != "refused-by-upstream" {
		t.Errorf("an upstream's JSON-RPC error recorded as %q", r.Reason)
	}
	for _, r := range records(t, s, audit.Query{Event: "tool-result"}) {
		if n, _ := fmt.Sscan(fmt.Sprint(r.Detail["response_bytes"]), new(int)); n != 1 || fmt.Sprint(r.Detail["response_bytes"]) == "0" {
			t.Errorf("%s (%s): response_bytes %v", r.Target, r.Reason, r.Detail["response_bytes"])
		}
	}
}

// A call cut by a graceful stop is answered "the gateway is stopping" and
// recorded as gateway-stopping, not as an upstream error (before: code 0,
// "context canceled", upstream-error).
func TestHostileOutcomeGatewayStopping(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddGate()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "gater", []string{"invoke:fin.*"}, "alice", false)
	alice, _ := newKey(t, s, map[string]any{"user": "alice"})
	got := make(chan apptest.Response, 1)
	go func() {
		got <- rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.gate","arguments":{},`+modern+`}}`, modernHeaders("tools/call", "fin.gate"))
	}()
	testutil.Eventually(t, 5*time.Second, func() bool { return len(up.Calls()) > 0 }, "the call did not reach the upstream")
	s.Stop()
	select {
	case r := <-got:
		if !strings.Contains(string(r.Body), "the gateway is stopping") {
			t.Errorf("the caller was told %d %s", r.Status, r.Body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the call outlived the stop")
	}
	if r := resultReason(t, s, "fin.gate"); r.Reason != "gateway-stopping" {
		t.Errorf("a call cut by the stop recorded as %q", r.Reason)
	}
}

// When the audit log refuses (here its segment file is renamed away under
// the server, which it notices at its next batch), a tools/call is
// answered 503 with Retry-After, and the message tells the truth: before
// the call, "not performed"; after the upstream ran it, "sent to the
// upstream, but its outcome could not be recorded". Before, both were
// HTTP 200 with -32603 saying the request was not performed. (A failed
// log stops the server's audit log until a restart, hence one between the
// two, with the file put back.)
func TestHostileAuditRefusesHonestly(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", true)
	gate := up.AddGate()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "gater", []string{"invoke:fin.*"}, "alice", false)
	alice, _ := newKey(t, s, map[string]any{"user": "alice"})
	call := func(tool string) apptest.Response {
		return rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":{},`+modern+`}}`, modernHeaders("tools/call", tool))
	}
	seg := filepath.Join(s.Dir, "audit", "00000000000000000001.wal")
	breakLog := func() { must(t, os.Rename(seg, seg+".moved")) }
	mendLog := func() { must(t, os.Rename(seg+".moved", seg)) }
	breakLog()
	r := call("fin.gate")
	if r.Status != 503 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "not performed") || len(up.Calls()) != 0 {
		t.Errorf("audit down before the call: %d %s (upstream calls %d)", r.Status, r.Body, len(up.Calls()))
	}
	// The cause is in the operational log, under the request's id.
	id, logged := r.Header.Get("X-Request-ID"), false
	for _, line := range strings.Split(s.Log.String(), "\n") {
		logged = logged || (strings.Contains(line, "audit unavailable") && strings.Contains(line, "request_id="+id) && strings.Contains(line, "err="))
	}
	if id == "" || !logged {
		t.Errorf("the log's refusal is not logged with request id %q", id)
	}
	s.App.Close(context.Background())
	mendLog()
	s.Restart(nil)
	done := make(chan apptest.Response, 1)
	go func() { done <- call("fin.gate") }()
	testutil.Eventually(t, 5*time.Second, func() bool { return len(up.Calls()) > 0 }, "the call did not reach the upstream")
	breakLog()
	close(gate)
	r = <-done
	s.App.Close(context.Background())
	mendLog()
	if r.Status != 503 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "sent to the upstream") {
		t.Errorf("audit down after the call ran: %d %s", r.Status, r.Body)
	}
}
