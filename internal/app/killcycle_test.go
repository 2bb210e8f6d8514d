package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/testutil"
)

// postID sends one 2026-07-28 tools/call of fin.lookup whose request id
// and argument are id, and reports whether it was answered with the
// upstream's result.
func postID(url, key, id string) bool {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"` + id +
		`"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest("POST", url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-ID", id)
	for k, v := range modernHeaders("tools/call", "fin.lookup") {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(b.String(), "Ada Lovelace") && !strings.Contains(b.String(), `"isError":true`)
}

// Kill -9 under load, 10 times: 4 clients call with unique ids while the
// server is killed with SIGKILL at once. After every kill the audit log
// verifies offline; at the end every acknowledged call has its decision
// and its successful outcome on record, and the upstream's ledger holds
// no call without a decision record: nothing reached the upstream that
// the log does not show, and nothing acknowledged was lost.
func TestKillCyclesLoseNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("10 crash cycles")
	}
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "fin-alice", []string{"invoke:fin.*"}, "alice", false)
	alice, _ := newKey(t, s, map[string]any{"user": "alice"})
	s.Stop()

	var mu sync.Mutex
	acked := map[string]bool{}
	for cycle := range 10 {
		url, kill := serveChild(t, s.Dir)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var n int
		for c := range 4 {
			wg.Go(func() {
				for i := range 500 { // bounded, whatever happens
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("k%d-%d-%d", cycle, c, i)
					if postID(url, alice, id) {
						mu.Lock()
						acked[id] = true
						n++
						mu.Unlock()
					}
				}
			})
		}
		testutil.Eventually(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return n >= 8+cycle*3 },
			"calls were not answered")
		kill() // calls under way
		close(stop)
		wg.Wait()
		if _, err := app.VerifyAudit(context.Background(), s.Dir, "", false, nil, ""); err != nil {
			t.Fatalf("cycle %d: the log does not verify after the kill: %v", cycle, err)
		}
	}
	s.Restart(nil) // recovery marks, the index catches up
	s.Stop()
	if _, err := app.VerifyAudit(context.Background(), s.Dir, "", true, nil, ""); err != nil {
		t.Fatalf("verify after the cycles: %v", err)
	}
	decided := map[string]bool{}
	outcome := map[string]audit.Outcome{}
	for _, ev := range []string{"tool-call", "tool-result"} {
		for before := uint64(0); ; {
			q := audit.Query{Event: ev, Limit: audit.MaxLimit, BeforeSeq: before}
			recs := records(t, s, q)
			for _, r := range recs {
				if ev == "tool-call" {
					decided[r.RequestID] = true
				} else if _, ok := outcome[r.RequestID]; !ok || r.Outcome == audit.Success {
					outcome[r.RequestID] = r.Outcome
				}
			}
			if len(recs) < audit.MaxLimit {
				break
			}
			before = recs[len(recs)-1].Seq
		}
	}
	for id := range acked {
		if !decided[id] || outcome[id] != audit.Success {
			t.Errorf("acknowledged call %s: decision %v, outcome %q", id, decided[id], outcome[id])
		}
	}
	ledger := 0
	for _, c := range up.Calls() {
		if c.Tool != "lookup" || !strings.HasPrefix(c.RequestID, "k") {
			continue
		}
		ledger++
		if !decided[c.RequestID] {
			t.Errorf("the upstream ran call %s, which has no decision record", c.RequestID)
		}
		if _, ok := outcome[c.RequestID]; !ok {
			t.Errorf("the upstream ran call %s, which has no outcome record (not even unknown-after-crash)", c.RequestID)
		}
	}
	t.Logf("10 kills: %d calls acknowledged, %d in the upstream's ledger, all on record", len(acked), ledger)
}
