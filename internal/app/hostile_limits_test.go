package app_test

// The catalogue of attacks on the gateway's capacity: no single caller can
// exhaust it, starve others, or turn the audit log into an amplifier.
// Floods are bounded in count and time, on loopback, and assert counts and
// ratios, not absolute times.

import (
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
