package app_test

// The catalogue of attacks on the gateway's capacity: no single caller can
// exhaust it, starve others, or turn the audit log into an amplifier.
// Floods are bounded in count and time, on loopback, and assert counts and
// ratios, not absolute times.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/config"
)

// 300 failed authentications from one source as fast as 4 workers can send
// them (each "Authorization: Bearer ost_<random id>_<random secret>"): the
// budget's burst is answered 401 and recorded one by one, the rest 429 with
// Retry-After, counted into aggregated authn-failures records. Before, all
// 300 were answered 401, each a durable record.
func TestHostileAuthenticationFlood(t *testing.T) {
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
func TestHostileSlowReader(t *testing.T) {
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
func TestHostileUserCaps(t *testing.T) {
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
	for len(up.Calls()) < 2 {
		time.Sleep(10 * time.Millisecond)
	}
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
