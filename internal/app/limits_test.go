package app_test

import (
	"net/http"
	"testing"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// Requests over a key's, user's or tool's rate get 429 with Retry-After,
// are recorded, and cost nothing upstream.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	s := apptest.StartWith(t, func(c *config.Config) {
		c.RateKey = config.Rate{Per: 0.1, Burst: 2}
		c.RateTool = config.Rate{Per: 0.1, Burst: 4}
	})
	up, aliceKey, bobKey := gatewaySetup(t, s, true)
	call := func(key string) *http.Response {
		r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},`+modern+`}}`,
			modernHeaders("tools/call", "fin.lookup"))
		return &http.Response{StatusCode: r.Status, Header: r.Header}
	}
	for i := range 2 {
		if r := call(aliceKey); r.StatusCode != 200 {
			t.Fatalf("call %d within the burst: %d", i, r.StatusCode)
		}
	}
	r := call(aliceKey)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("over the key's rate: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	// Another key has its own bucket, but the tool's bucket is shared.
	for i := range 2 {
		if r := call(bobKey); r.StatusCode != 200 {
			t.Fatalf("bob's call %d: %d", i, r.StatusCode)
		}
	}
	if recs := records(t, s, audit.Query{Event: "rate-limited"}); len(recs) != 1 || recs[0].Reason != "rate-limit-key" {
		t.Errorf("rate-limited records: %+v", recs)
	}
	newBob, _ := newKey(t, s, map[string]any{"user": "bob"})
	if r := call(newBob); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("over the tool's rate: %d", r.StatusCode)
	}
	if n := len(up.Calls()); n != 4 {
		t.Errorf("upstream received %d calls, want 4", n)
	}
}
