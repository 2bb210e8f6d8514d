package app_test

// The catalogue of attacks on the gateway's capacity: no single caller can
// exhaust it, starve others, or turn the audit log into an amplifier.
// Floods are bounded in count and time, on loopback, and assert counts and
// ratios, not absolute times.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
)

// 300 failed authentications from one source as fast as 4 workers can send
// them (each "Authorization: Bearer ost_<random id>_<random secret>"): the
// budget's burst is answered 401 and recorded one by one, the rest 429 with
// Retry-After, counted into aggregated authn-failures records. Before, all
// 300 were answered 401, each a durable record.
func TestHostileAuthenticationFlood(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) {
		c.RateAuthFail, c.AuthFailWindow = config.Rate{Per: 2, Burst: 20}, 300*time.Millisecond
	})
	const n = 300
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				_, key := authn.NewKey()
				path := "/api/v1/whoami"
				r := s.Do("GET", path, key, nil)
				if r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if statuses[401] > 25 || statuses[429] < n-25 || statuses[401]+statuses[429] != n {
		t.Errorf("answers: %v; want at most 25 × 401, the rest 429", statuses)
	}
	// Every refusal is on record, one by one or counted.
	deadline := time.Now().Add(5 * time.Second)
	for {
		single := len(records(t, s, audit.Query{Event: audit.EventAuthnFailure}))
		counted := 0
		for _, r := range records(t, s, audit.Query{Event: authn.EventAuthnFailures}) {
			c, _ := strconv.Atoi(fmt.Sprint(r.Detail["count"]))
			counted += c
			if r.Detail["sample_reason"] == "" || r.Remote == "" {
				t.Errorf("aggregated record without a sample: %+v", r)
			}
		}
		if single+counted == n {
			if single > 25 {
				t.Errorf("%d failures recorded one by one under a flood", single)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records: %d one by one + %d counted, want %d in all", single, counted, n)
		}
		s.Clock.Advance(100 * time.Millisecond) // the windows end on the server's clock
		time.Sleep(100 * time.Millisecond)
	}
	// A correct key from the same source works once the budget refills.
	s.Clock.Advance(time.Second)
	if r := s.Do("GET", "/api/v1/whoami", s.AdminKey, nil); r.Status != 200 {
		t.Errorf("admin after the flood: %d %s", r.Status, r.Body)
	}
}

// A client that asks for a large result and never reads it: the write that
// blocks ends after the stall bound and the handler with it, instead of the
// response (8 MiB here) staying pinned in the gateway for as long as the
// client keeps the connection. Before, /mcp cleared every write deadline, so
// the handler waited in its write forever.
func TestHostileSlowReader(t *testing.T) { // not parallel: it looks for the gateway's handlers among the process's goroutines
	s := apptest.StartWith(t, func(c *config.Config) { c.WriteStall = 300 * time.Millisecond })
	_, key := userOn(t, s, "alice", map[string]any{"name": "bad", "url": apptest.NewHostileUpstream(t), "allow_private": true})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad.big","arguments":{},` + modern + `}}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"+
		"Mcp-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: bad.big\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
	// The gateway serves in this process: its handlers are goroutines here.
	serving := func() bool {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		return strings.Contains(b.String(), "internal/gateway.(*Gateway).ServeHTTP")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !serving() { // the call is under way
		if time.Now().After(deadline) {
			t.Fatal("the call never reached the gateway")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for serving() {
		if time.Now().After(deadline) {
			t.Fatal("the gateway is still writing to a client that does not read")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One user's caps, over all their keys: sessions, streams and calls in
// flight. At each cap the next one is refused at once (429 with
// Retry-After, or a JSON-RPC error for a call), recorded, and another user
// is unaffected. Before, one key opened 5,000 sessions and held 300
// streams.
func TestHostileUserCaps(t *testing.T) { // not parallel: it bounds how long calls take
	s := apptest.StartWith(t, func(c *config.Config) { c.UserSessions, c.UserStreams, c.UserCalls = 3, 2, 2 })
	up, alice, bob := gatewaySetup(t, s, false)
	gate := up.AddGate()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams/fin/sync", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/tools/activate", s.AdminKey, map[string]any{"tool": "fin.gate", "version": 1}), http.StatusOK)
	setup(t, s, "gater", []string{"invoke:fin.*"}, "carol", false)
	carol, _ := newKey(t, s, map[string]any{"user": "carol"})
	alice2, _ := newKey(t, s, map[string]any{"user": "alice"})
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	var sids []string
	for i, key := range []string{alice, alice2, alice, alice2} {
		r := rpc(t, s, key, initialize, nil)
		if i < 3 {
			if r.Status != 200 {
				t.Fatalf("session %d: %d %s", i+1, r.Status, r.Body)
			}
			sids = append(sids, r.Header.Get("Mcp-Session-Id"))
			continue
		}
		if r.Status != 429 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "open sessions") {
			t.Errorf("a 4th session over two keys: %d %s", r.Status, r.Body)
		}
	}
	if r := rpc(t, s, bob, initialize, nil); r.Status != 200 {
		t.Errorf("bob's session: %d", r.Status)
	}
	// Streams: two held open, the third refused.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, sid := range sids {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+map[bool]string{true: alice, false: alice2}[i%2 == 0])
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 && resp.StatusCode != 200 {
			t.Errorf("stream %d: %d", i+1, resp.StatusCode)
		}
		if i == 2 && resp.StatusCode != 429 {
			t.Errorf("a 3rd stream: %d", resp.StatusCode)
		}
		if i == 2 {
			resp.Body.Close()
		}
	}
	// Calls in flight: two held at the gate, the third refused at once.
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.gate","arguments":{},` + modern + `}}`
	done := make(chan apptest.Response, 2)
	for range 2 {
		go func() { done <- rpc(t, s, carol, call, modernHeaders("tools/call", "fin.gate")) }()
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(up.Calls()) >= 2 }, "the two calls did not reach the upstream")
	start := time.Now()
	r := rpc(t, s, carol, call, modernHeaders("tools/call", "fin.gate"))
	if !strings.Contains(string(r.Body), "too many calls in flight") || time.Since(start) > 2*time.Second {
		t.Errorf("a 3rd call in flight: %d %s after %s", r.Status, r.Body, time.Since(start))
	}
	close(gate)
	for range 2 {
		if r := <-done; r.Status != 200 {
			t.Errorf("a held call: %d %s", r.Status, r.Body)
		}
	}
	if r := rpc(t, s, carol, call, modernHeaders("tools/call", "fin.gate")); r.Status != 200 || strings.Contains(string(r.Body), "too many") {
		t.Errorf("a call after the others ended: %d %s", r.Status, r.Body)
	}
	reasons := map[string]int{}
	for _, rec := range records(t, s, audit.Query{}) {
		reasons[rec.Reason]++
	}
	for _, want := range []string{"user-sessions-cap", "user-streams-cap", "user-calls-cap"} {
		if reasons[want] == 0 {
			t.Errorf("no record with reason %s", want)
		}
	}
}

// One user's hung calls cannot starve an upstream or a tool: with 4 slots
// alice may hold 1 call of one tool (a quarter) — her other hung calls are
// refused at once, not queued to the call timeout — and bob's calls, of
// another tool and of the very tool she hangs on, go through at once.
// Before, one user's hung calls filled all 64 slots and a second user's
// call waited 9.6 s.
func TestHostileFairUpstreamSlots(t *testing.T) { // not parallel: it bounds how long calls take
	s := apptest.StartWith(t, func(c *config.Config) { c.UpstreamSlots, c.CallTimeout = 4, 20*time.Second })
	url := apptest.NewHostileUpstream(t)
	_, alice := userOn(t, s, "alice", map[string]any{"name": "bad", "url": url, "allow_private": true})
	setup(t, s, "bob-role", []string{"invoke:bad.*"}, "bob", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	call := func(key, tool string) apptest.Response {
		return rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":{},`+modern+`}}`, modernHeaders("tools/call", tool))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hung := make(chan int, 4)
	for range 4 { // alice hangs four calls: two hold slots, two are refused at once
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad.hang","arguments":{},`+modern+`}}`))
			for k, v := range modernHeaders("tools/call", "bad.hang") {
				req.Header.Set(k, v)
			}
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			status := 0
			if resp, err := http.DefaultClient.Do(req); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			hung <- status
		}()
	}
	for range 2 {
		select {
		case <-hung:
		case <-time.After(3 * time.Second):
			t.Fatal("alice's calls beyond her share were not refused at once")
		}
	}
	start := time.Now()
	r := call(bob, "bad.ok")
	if took := time.Since(start); r.Status != 200 || strings.Contains(string(r.Body), "isError\":true") || took > 2*time.Second {
		t.Errorf("bob's call while alice's hang: %d %s after %s", r.Status, r.Body, took)
	}
	if rec := resultReason(t, s, "bad.ok"); rec.Reason != "" && rec.Reason != "upstream-busy" {
		t.Errorf("record: %s", rec.Reason)
	}
	busy := 0
	for _, rec := range records(t, s, audit.Query{Event: "tool-result"}) {
		if rec.Reason == "upstream-busy" {
			busy++
		}
	}
	if busy != 3 { // alice's hangs beyond her one
		t.Errorf("upstream-busy records: %d, want 3", busy)
	}
	// bob's call of the tool alice hangs on is admitted (it hangs too,
	// until this client gives up), not refused for want of a slot.
	req, _ := http.NewRequest("POST", s.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad.hang","arguments":{},`+modern+`}}`))
	for k, v := range modernHeaders("tools/call", "bad.hang") {
		req.Header.Set(k, v)
	}
	req.Header.Set("Authorization", "Bearer "+bob)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err := (&http.Client{Timeout: time.Second}).Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("bob's call of the hung tool was answered at once: %s", b)
	}
	cancel()
	<-hung
	<-hung
}

// Admin writes are limited per key: 100 key creations in a row with one
// admin key get the burst through and 429 with Retry-After for the rest,
// on record; reads and other keys are unaffected. Before, 600 key
// creations went through in 12 s.
func TestHostileAdminWriteFlood(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) { c.RateAdminWrite = config.Rate{Per: 1, Burst: 10} })
	statuses := map[int]int{}
	for range 100 {
		r := s.Do("POST", "/api/v1/keys", s.AdminKey, map[string]any{"user": "admin"})
		statuses[r.Status]++
		if r.Status == 429 && r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if statuses[201] > 12 || statuses[429] < 88 {
		t.Errorf("answers: %v", statuses)
	}
	if r := s.Do("GET", "/api/v1/keys", s.AdminKey, nil); r.Status != 200 {
		t.Errorf("a read during the flood: %d", r.Status)
	}
	if n := len(records(t, s, audit.Query{Event: "rate-limited"})); n < 88 {
		t.Errorf("rate-limited records: %d", n)
	}
}

// Pending approval requests are capped per user: the fourth distinct held
// call (cap 3) is refused at once with a clear message, on record as
// user-pending-cap, and opens no request; an identical call still joins
// its open request. Before, one user opened 326 pending requests in 1.3 s.
func TestHostilePendingCap(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, func(c *config.Config) { c.UserPending, c.ApprovalWait = 3, 0 })
	for i := range 3 {
		if _, id := w.pay(t, float64(10+i)); id == "" {
			t.Fatalf("held call %d opened no request", i+1)
		}
	}
	_, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 99, "to": "ACME"}})
	if err == nil || !strings.Contains(err.Error(), "3 approval requests pending") {
		t.Errorf("a fourth pending request: %v", err)
	}
	if _, id := w.pay(t, 10); id == "" {
		t.Error("an identical held call no longer joins its open request")
	}
	n := 0
	for _, rec := range records(t, w.s, audit.Query{Event: "tool-call", Target: "tool:fin.pay"}) {
		if rec.Reason == "user-pending-cap" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("user-pending-cap records: %d, want 1", n)
	}
	if got := len(records(t, w.s, audit.Query{Event: approval.EventRequested, Outcome: audit.Success})); got != 3 {
		t.Errorf("requests opened: %d, want 3", got)
	}
}
