package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/edge"
)

// Each rate limit, past its burst, answers 429 with Retry-After and a
// message naming it, records the refusal, and lets the request through
// again once its bucket refills. The key's and the user's count every
// request; the tool's only calls of a tool that exists.
func TestRateLimits(t *testing.T) {
	one := config.Rate{Per: 1, Burst: 1}
	call := func(tool string) string { return callBody(tool, `{}`, modernMeta) }
	for _, c := range []struct {
		name   string
		limits Limits
		first  func(d *door) *http.Request // spends the bucket
		then   func(d *door) *http.Request // refused
		other  func(d *door) *http.Request // not refused
		reason string
		target string
	}{
		{name: "key", limits: Limits{PerKey: one},
			first:  func(d *door) *http.Request { return d.req(aliceKey, ping, nil) },
			then:   func(d *door) *http.Request { return d.req(aliceKey, ping, nil) },
			other:  func(d *door) *http.Request { return d.req(alice2Key, ping, nil) },
			reason: "rate-limit-key"},
		{name: "user, over their keys", limits: Limits{PerUser: one},
			first:  func(d *door) *http.Request { return d.req(aliceKey, ping, nil) },
			then:   func(d *door) *http.Request { return d.req(alice2Key, ping, nil) },
			other:  func(d *door) *http.Request { return d.req(bobKey, ping, nil) },
			reason: "rate-limit-user"},
		{name: "tool, over its callers", limits: Limits{PerTool: one},
			first: func(d *door) *http.Request {
				return d.req(aliceKey, call("shop.lookup"), modern("tools/call", "shop.lookup"))
			},
			then: func(d *door) *http.Request {
				return d.req(bobKey, call("shop.lookup"), modern("tools/call", "shop.lookup"))
			},
			other: func(d *door) *http.Request {
				return d.req(aliceKey, call("shop.route"), modern("tools/call", "shop.route"))
			},
			reason: "rate-limit-tool", target: "tool:shop.lookup"},
		{name: "key, by unknown methods too", limits: Limits{PerKey: one},
			first: func(d *door) *http.Request {
				return d.req(aliceKey, `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"x:y"}}`, nil)
			},
			then:   func(d *door) *http.Request { return d.req(aliceKey, ping, nil) },
			other:  func(d *door) *http.Request { return d.req(bobKey, ping, nil) },
			reason: "rate-limit-key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDoor(t, func(cfg *Config) { cfg.Limits = c.limits })
			if r := d.do(c.first(d)); r.Code == http.StatusTooManyRequests {
				t.Fatalf("the first request: %s", r.Body)
			}
			refused := c.then(d)
			refused.Header.Set("X-Request-Id", "refused")
			r := d.do(refused)
			if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "1" {
				t.Fatalf("past the burst: %d %v %s", r.Code, r.Header(), r.Body)
			}
			what := strings.Fields(c.name)[0]
			if _, msg := rpcErrorOf(t, r); msg != fmt.Sprintf("rate limit of this %s exceeded; retry in 1 s", strings.TrimSuffix(what, ",")) {
				t.Errorf("message %q", msg)
			}
			recs := d.audit.request("refused")
			if len(recs) != 1 || recs[0].Event != edge.EventRateLimited || recs[0].Outcome != audit.Denied || recs[0].Reason != c.reason ||
				recs[0].Target != c.target || recs[0].Detail["retry_after_s"] != 1 {
				t.Errorf("recorded %+v", recs)
			}
			if r := d.do(c.other(d)); r.Code == http.StatusTooManyRequests {
				t.Errorf("another bucket was spent: %s", r.Body)
			}
			d.clock.Advance(time.Second)
			if r := d.do(c.then(d)); r.Code == http.StatusTooManyRequests {
				t.Errorf("after the bucket refilled: %s", r.Body)
			}
		})
	}
}

// A tool name nobody offers gets no bucket of its own: made-up names
// cannot fill the limiter, and they are refused as unknown, not limited.
func TestRateLimitUnknownTools(t *testing.T) {
	d := newDoor(t, func(c *Config) { c.Limits = Limits{PerTool: config.Rate{Per: 1, Burst: 1}} })
	for i := range 3 {
		r := d.post(t, aliceKey, callBody("shop.nope", `{}`, modernMeta), modern("tools/call", "shop.nope"))
		if _, msg := rpcErrorOf(t, r); r.Code == http.StatusTooManyRequests || !strings.Contains(msg, "unknown tool") {
			t.Errorf("call %d of a made-up tool: %d %s", i, r.Code, r.Body)
		}
	}
	if n := d.g.perTool.buckets.Len(); n != 0 {
		t.Errorf("%d tool buckets for made-up names", n)
	}
}

// Refused requests are recorded one by one within a key's budget, then
// counted into one aggregated record: a flood of bad requests does not
// turn the audit log into an amplifier.
func TestRefusalsAggregated(t *testing.T) {
	d := newDoor(t)
	for range refusalBurst + 5 {
		if r := d.post(t, aliceKey, `{"jsonrpc":"2.0","id":1,"id":1,"method":"ping"}`, nil); r.Code != http.StatusBadRequest {
			t.Fatalf("%d %s", r.Code, r.Body)
		}
	}
	if n := len(d.audit.of(edge.EventRequestRefused)); n != refusalBurst {
		t.Errorf("%d refusals on record one by one, want %d", n, refusalBurst)
	}
	if r := d.post(t, bobKey, `[]`, nil); r.Code != http.StatusBadRequest || len(d.audit.of(edge.EventRequestRefused)) != refusalBurst+1 {
		t.Errorf("another key's refusal was not recorded: %d", r.Code)
	}
	d.g.Close() // flushes what is counted
	agg := d.audit.of(EventRequestsRefused)
	if len(agg) != 1 || agg[0].Actor != "alice" || agg[0].Detail["count"] != 5 || agg[0].Detail["sample_reason"] != "message-malformed" {
		t.Errorf("aggregated %+v", agg)
	}
}
