package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/testutil"
)

// A session id is bound to the key that opened it. Presented with any
// other key — another user's, or the same user's other key — it is
// answered exactly like an id nobody opened, and recorded; after DELETE
// it is unknown to its own key too.
func TestSessionBinding(t *testing.T) {
	d := newDoor(t)
	sid := d.session(t, aliceKey)
	const list = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	if r := d.post(t, aliceKey, list, legacy(sid)); r.Code != http.StatusOK || !strings.Contains(r.Body.String(), "shop.lookup") {
		t.Fatalf("its own key: %d %s", r.Code, r.Body)
	}
	unknown := d.post(t, bobKey, list, legacy("NOSUCHSESSION"))
	if unknown.Code != http.StatusNotFound {
		t.Fatalf("an unknown session: %d %s", unknown.Code, unknown.Body)
	}
	for _, c := range []struct {
		name, key, method string
	}{
		{"another user's key", bobKey, "POST"},
		{"the same user's other key", alice2Key, "POST"},
		{"another key's GET", bobKey, "GET"},
		{"another key's DELETE", bobKey, "DELETE"},
	} {
		h := legacy(sid)
		h.Set("X-Request-Id", idOf("bind", c.name))
		var r *httptest.ResponseRecorder
		if c.method == "POST" {
			r = d.post(t, c.key, list, h)
		} else {
			r = d.serve(httptest.NewRequest(c.method, "/mcp", nil), c.key, h)
		}
		if r.Code != unknown.Code || r.Body.String() != unknown.Body.String() || r.Header().Get("Content-Type") != unknown.Header().Get("Content-Type") {
			t.Errorf("%s: %d %q, an unknown session: %d %q", c.name, r.Code, r.Body, unknown.Code, unknown.Body)
		}
		recs := d.audit.request(h.Get("X-Request-Id"))
		if len(recs) != 1 || recs[0].Event != edge.EventRequestRefused || recs[0].Reason != "session-unknown" || recs[0].Detail["method"] != c.method {
			t.Errorf("%s: recorded %+v", c.name, recs)
		}
	}
	// The foreign DELETE closed nothing.
	if r := d.post(t, aliceKey, list, legacy(sid)); r.Code != http.StatusOK {
		t.Fatalf("after the others' attempts: %d %s", r.Code, r.Body)
	}
	if r := d.serve(httptest.NewRequest("DELETE", "/mcp", nil), aliceKey, legacy(sid)); r.Code >= 300 {
		t.Fatalf("DELETE: %d %s", r.Code, r.Body)
	}
	if r := d.post(t, aliceKey, list, legacy(sid)); r.Code != unknown.Code || r.Body.String() != unknown.Body.String() {
		t.Errorf("after DELETE: %d %s", r.Code, r.Body)
	}
}

// A user holds at most Caps.Sessions open sessions over all their keys:
// the next initialize is refused 429 with Retry-After, naming the cap, on
// record; other users are not affected, and closing one makes room.
func TestSessionsCap(t *testing.T) {
	d := newDoor(t, func(c *Config) { c.Caps.Sessions = 2 })
	first := d.session(t, aliceKey)
	d.session(t, alice2Key)
	r := d.post(t, aliceKey, initialize, legacy(""))
	if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "5" || r.Header().Get("Mcp-Session-Id") != "" {
		t.Fatalf("a third session: %d %v %s", r.Code, r.Header(), r.Body)
	}
	m := rpcMessage(t, r)
	if _, msg := rpcErrorOf(t, r); m["id"] != float64(1) || msg != "too many open sessions for this user (at most 2); end one and retry" {
		t.Errorf("answer %s", r.Body)
	}
	if recs := d.audit.of(edge.EventRequestRefused); len(recs) != 1 || recs[0].Reason != ReasonSessionsCap || recs[0].Actor != "alice" {
		t.Errorf("recorded %+v", recs)
	}
	d.session(t, bobKey)
	if r := d.serve(httptest.NewRequest("DELETE", "/mcp", nil), aliceKey, legacy(first)); r.Code >= 300 {
		t.Fatalf("DELETE: %d %s", r.Code, r.Body)
	}
	d.session(t, aliceKey)
}

// A session idle past SessionIdle no longer counts against the cap.
func TestIdleSessionsLeaveTheCap(t *testing.T) {
	d := newDoor(t, func(c *Config) { c.Caps.Sessions, c.SessionIdle = 1, time.Minute })
	d.session(t, aliceKey)
	if r := d.post(t, aliceKey, initialize, legacy("")); r.Code != http.StatusTooManyRequests {
		t.Fatalf("a second session: %d", r.Code)
	}
	d.clock.Advance(time.Minute + time.Second)
	d.session(t, aliceKey)
}

// A user holds at most Caps.Streams open GET streams: the next is refused
// 429 with Retry-After, on record, and a closed stream makes room.
func TestStreamsCap(t *testing.T) {
	d := newDoor(t, func(c *Config) { c.Caps.Streams = 1 })
	srv := httptest.NewServer(d.g) // 127.0.0.1
	t.Cleanup(srv.Close)
	one, two, bobs := d.session(t, aliceKey), d.session(t, alice2Key), d.session(t, bobKey)
	get := func(ctx context.Context, key, sid string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Mcp-Session-Id", sid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ctx, closeFirst := context.WithCancel(context.Background())
	defer closeFirst()
	first := get(ctx, aliceKey, one)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("a first stream: %d", first.StatusCode)
	}
	resp := get(context.Background(), alice2Key, two) // the same user, another key and session
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "5" || !strings.Contains(string(body), "too many open streams for this user (at most 1)") {
		t.Fatalf("a second stream: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if recs := d.audit.of(edge.EventRequestRefused); len(recs) != 1 || recs[0].Reason != ReasonStreamsCap || recs[0].KeyID != "k-alice-2" {
		t.Errorf("recorded %+v", recs)
	}
	bctx, closeBob := context.WithCancel(context.Background())
	defer closeBob()
	if resp := get(bctx, bobKey, bobs); resp.StatusCode != http.StatusOK {
		t.Errorf("another user's stream: %d", resp.StatusCode)
	}
	closeFirst()
	first.Body.Close()
	sctx, closeSecond := context.WithCancel(context.Background())
	defer closeSecond()
	testutil.Eventually(t, 5*time.Second, func() bool {
		resp := get(sctx, alice2Key, two)
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return false
		}
		return true
	}, "a stream is still refused after the first closed")
}

// On a server listening on loopback, a request addressed to another host
// (DNS rebinding) is refused even when it would take the direct path, and
// nothing is called.
func TestRebindingRefused(t *testing.T) {
	d := newDoor(t)
	srv := httptest.NewServer(d.g) // 127.0.0.1
	t.Cleanup(srv.Close)
	send := func(host string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(callBody("shop.lookup", `{}`, modernMeta)))
		for k, v := range modern("tools/call", "shop.lookup") {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+aliceKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := send("attacker.example:80"); r.StatusCode != http.StatusForbidden {
		t.Errorf("a rebound host: %d", r.StatusCode)
	}
	if n := d.up.count(); n != 0 {
		t.Fatalf("a rebound request reached the upstream")
	}
	for _, host := range []string{"localhost", "127.0.0.1:1", "[::ffff:127.0.0.1]:1"} {
		if r := send(host); r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Host %s: %d %s", host, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
}
