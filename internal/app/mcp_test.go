package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

// gatewaySetup: an upstream "fin" and two users. alice may invoke lookup
// and pay; bob may only invoke lookup. Nobody may see delete_all.
func gatewaySetup(t *testing.T, s *apptest.Server, statelessUpstream bool) (up *apptest.Upstream, alice, bob string) {
	t.Helper()
	up = apptest.NewUpstream(t, s, "fin", statelessUpstream)
	r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true})
	mustStatus(t, r, http.StatusCreated)
	var added adminapi.AddedUpstream
	r.JSON(t, &added)
	if added.Sync.Tools != 3 || len(added.Sync.Created) != 3 || added.Sync.Error != "" {
		t.Fatalf("sync report: %+v", added.Sync)
	}
	setup(t, s, "payer", []string{"invoke:fin.lookup", "invoke:fin.pay"}, "alice", false)
	setup(t, s, "reader", []string{"invoke:fin.lookup"}, "bob", false)
	alice, _ = newKey(t, s, map[string]any{"user": "alice"})
	bob, _ = newKey(t, s, map[string]any{"user": "bob"})
	return up, alice, bob
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func TestGatewayBothEras(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, clientVersion string
		statelessUpstream   bool
	}{
		{"modern client, session upstream", "", false},
		{"legacy 2025-11-25 client, session upstream", "2025-11-25", false},
		{"legacy 2025-06-18 client, stateless upstream", "2025-06-18", true},
		{"modern client, stateless upstream", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := apptest.Start(t)
			up, aliceKey, bobKey := gatewaySetup(t, s, tc.statelessUpstream)
			alice, err := s.Client(t, aliceKey, tc.clientVersion)
			if err != nil {
				t.Fatal(err)
			}
			bob, err := s.Client(t, bobKey, tc.clientVersion)
			if err != nil {
				t.Fatal(err)
			}
			if got := toolNames(t, alice); !slices.Equal(got, []string{"approval_status", "discover_tools", "fin.lookup", "fin.pay"}) {
				t.Errorf("alice sees %v", got)
			}
			if got := toolNames(t, bob); !slices.Equal(got, []string{"approval_status", "discover_tools", "fin.lookup"}) {
				t.Errorf("bob sees %v", got)
			}
			ctx := context.Background()
			res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 12.5, "to": "ACME"}})
			if err != nil || res.IsError {
				t.Fatalf("alice pays: %+v %v", res, err)
			}
			if sc, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(sc), `"paid":12.5`) {
				t.Errorf("result %s", sc)
			}
			// bob: a hidden tool and a missing one fail identically.
			_, hidden := bob.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 1, "to": "x"}})
			_, missing := bob.CallTool(ctx, &mcp.CallToolParams{Name: "fin.nope", Arguments: map[string]any{"amount": 1, "to": "x"}})
			if hidden == nil || missing == nil || hidden.Error() != strings.ReplaceAll(missing.Error(), "fin.nope", "fin.pay") {
				t.Errorf("hidden %v vs missing %v", hidden, missing)
			}
			_, never := bob.CallTool(ctx, &mcp.CallToolParams{Name: "fin.delete_all"})
			if never == nil {
				t.Error("bob called delete_all")
			}
			// Arguments are checked against the pinned schema before forwarding.
			if _, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": "lots"}}); err == nil {
				t.Error("invalid arguments were accepted")
			}
			calls := up.Calls()
			if len(calls) != 1 || calls[0].Tool != "pay" {
				t.Fatalf("upstream received %+v (only alice's valid payment may arrive)", calls)
			}
			c := calls[0]
			if c.IDError != "" || c.Identity.Subject != "alice" || c.Identity.Audience != "fin" || !slices.Equal(c.Identity.Roles, []string{"payer"}) ||
				c.RequestID == "" || c.Identity.RequestID != c.RequestID {
				t.Errorf("upstream saw identity %+v (%s), request id %q", c.Identity, c.IDError, c.RequestID)
			}
			if leaked := up.Leaked(); len(leaked) > 0 {
				t.Errorf("the client's API key reached the upstream in %v", leaked)
			}
			// The audit log holds the decisions and the outcome.
			recs := records(t, s, audit.Query{Event: "tool-call"})
			var allowed, denied int
			for _, r := range recs {
				switch {
				case r.Outcome == audit.Success && r.Actor == "alice":
					allowed++
				case r.Outcome == audit.Denied && r.Actor == "bob":
					denied++
				}
				if r.Detail["args_sha256"] == nil {
					t.Errorf("record %d lacks the argument digest", r.Seq)
				}
			}
			if allowed != 1 || denied != 3 {
				t.Errorf("tool-call records: %d allowed, %d denied", allowed, denied)
			}
			if res := records(t, s, audit.Query{Event: "tool-result", Actor: "alice"}); len(res) != 1 || res[0].Outcome != audit.Success {
				t.Errorf("tool-result records: %+v", res)
			}
		})
	}
}

// Revoking a key cuts the very next call of an open session.
func TestGatewayRevocationBetweenCalls(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up, aliceKey, _ := gatewaySetup(t, s, false)
	alice, err := s.Client(t, aliceKey, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}}); err != nil {
		t.Fatal(err)
	}
	id := strings.Split(aliceKey, "_")[1]
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+id+"/revoke", s.AdminKey, nil), http.StatusOK)
	if _, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "2"}}); err == nil {
		t.Fatal("a revoked key kept calling")
	}
	if n := len(up.Calls()); n != 1 {
		t.Errorf("upstream received %d calls, want 1", n)
	}
}

// rpc posts one raw JSON-RPC body to /mcp.
func rpc(t *testing.T, s *apptest.Server, key, body string, header map[string]string) apptest.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: []byte(b.String())}
}

const modern = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

func modernHeaders(method, name string) map[string]string {
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": method}
	if name != "" {
		h["Mcp-Name"] = name
	}
	return h
}

// The front door: authentication, origin, strict decoding, batches,
// the method allow-list, and session binding.
func TestGatewayFrontDoor(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up, aliceKey, bobKey := gatewaySetup(t, s, false)
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":` + name + `,"arguments":{"id":"1"},` + modern + `}}`
	}

	// Authentication on every request; the same answer whatever the reason.
	for _, key := range []string{"", "ost_nonsense", strings.Replace(aliceKey, "_", "_x", 1)} {
		r := rpc(t, s, key, call(`"fin.lookup"`), modernHeaders("tools/call", "fin.lookup"))
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `resource_metadata="http://`) {
			t.Errorf("key %q: %d %q", key, r.Status, r.Header.Get("WWW-Authenticate"))
		}
	}
	meta := s.Do("GET", "/.well-known/oauth-protected-resource/mcp", "", nil)
	if meta.Status != 200 || !strings.Contains(string(meta.Body), `"resource":"http://127.0.0.1`) {
		t.Errorf("resource metadata: %d %s", meta.Status, meta.Body)
	}
	// A modern-era call works over raw HTTP, and its W3C trace context
	// reaches the upstream (its trace id is the correlation id).
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h := modernHeaders("tools/call", "fin.lookup")
	h["Traceparent"] = tp
	r := rpc(t, s, aliceKey, call(`"fin.lookup"`), h)
	if r.Status != 200 || !strings.Contains(string(r.Body), "Ada Lovelace") {
		t.Fatalf("raw modern call: %d %s", r.Status, r.Body)
	}
	if calls := up.Calls(); len(calls) == 0 || calls[len(calls)-1].Traceparent != tp || calls[len(calls)-1].RequestID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace context upstream: %+v", calls)
	}
	// Header and body must agree.
	r = rpc(t, s, aliceKey, call(`"fin.lookup"`), modernHeaders("tools/call", "fin.pay"))
	if r.Status != 400 || !strings.Contains(string(r.Body), "-32020") {
		t.Errorf("Mcp-Name mismatch: %d %s", r.Status, r.Body)
	}
	before := len(up.Calls())
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"batch", `[` + call(`"fin.lookup"`) + `]`, 400, "batch"},
		{"duplicate key", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.delete_all","name":"fin.lookup"}}`, 400, "duplicate"},
		{"case-variant member", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"fin.lookup"}}`, 400, "unknown tools/call parameter"},
		{"NUL in name", call(`"fin.lookup\u0000"`), 400, "control characters"},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"fin.lookup\xff\"}}", 400, "UTF-8"},
		{"subscriptions not exposed", `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"x"}}`, 200, "method not found"},
		{"NUL in prompt name", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x\u0000"}}`, 400, "control characters"},
		{"unknown top-level member", `{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}`, 400, "unknown member"},
	}
	for _, c := range cases {
		r := rpc(t, s, aliceKey, c.body, nil)
		if r.Status != c.status || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
		}
	}
	// A URI no upstream lists is not found, however it is spelled: never
	// fetched from anywhere.
	r = rpc(t, s, aliceKey, `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///etc/passwd",`+modern+`}}`,
		map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "resources/read", "Mcp-Name": "file:///etc/passwd"})
	if !strings.Contains(string(r.Body), "Resource not found") || strings.Contains(string(r.Body), "root:") {
		t.Errorf("unlisted resource: %d %s", r.Status, r.Body)
	}
	if n := len(up.Calls()); n != before {
		t.Errorf("refused requests reached the upstream: %d calls", n-before)
	}
	// Origins not on the allow-list are refused.
	r = rpc(t, s, aliceKey, call(`"fin.lookup"`), map[string]string{"Origin": "https://evil.example", "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "fin.lookup"})
	if r.Status != 403 {
		t.Errorf("foreign origin: %d %s", r.Status, r.Body)
	}
	// A page served from this machine may call (DNS rebinding keeps a foreign origin).
	r = rpc(t, s, aliceKey, call(`"fin.lookup"`), map[string]string{"Origin": "http://localhost:3000", "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "fin.lookup"})
	if r.Status != 200 {
		t.Errorf("loopback origin: %d %s", r.Status, r.Body)
	}

	// A legacy session id belongs to the key that created it.
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	r = rpc(t, s, aliceKey, init, nil)
	sid := r.Header.Get("Mcp-Session-Id")
	if r.Status != 200 || sid == "" {
		t.Fatalf("initialize: %d %s", r.Status, r.Body)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`
	legacy := func(key, session string) apptest.Response {
		return rpc(t, s, key, list, map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"})
	}
	if r := legacy(aliceKey, sid); r.Status != 200 {
		t.Fatalf("own session: %d %s", r.Status, r.Body)
	}
	stolen, unknown := legacy(bobKey, sid), legacy(bobKey, "no-such-session")
	if stolen.Status != 404 || string(stolen.Body) != string(unknown.Body) || unknown.Status != 404 {
		t.Errorf("stolen session %d %q vs unknown %d %q", stolen.Status, stolen.Body, unknown.Status, unknown.Body)
	}
}

// discover_tools finds only what the caller may use.
func TestDiscoverTools(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	_, aliceKey, bobKey := gatewaySetup(t, s, false)
	for key, want := range map[string][]string{aliceKey: {"fin.pay"}, bobKey: {}} {
		cs, err := s.Client(t, key, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "discover_tools", Arguments: map[string]any{"query": "invoice"}})
		if err != nil || res.IsError {
			t.Fatalf("discover_tools: %+v %v", res, err)
		}
		var out struct {
			Tools []struct{ Name string } `json:"tools"`
		}
		b, _ := json.Marshal(res.StructuredContent)
		json.Unmarshal(b, &out)
		var got []string
		for _, tool := range out.Tools {
			got = append(got, tool.Name)
		}
		if len(got) != len(want) || (len(want) > 0 && got[0] != want[0]) {
			t.Errorf("discover_tools found %v, want %v", got, want)
		}
	}
}

// A plain 2026-07-28 tools/call is answered on the gateway's direct path
// (one application/json response); the same call asking for progress goes
// through the SDK's server (an event stream). Both must give the same
// JSON-RPC answer for every outcome, and both are on record.
func TestDirectCallMatchesSDK(t *testing.T) {
	t.Parallel()
	for _, stateless := range []bool{true, false} {
		t.Run(fmt.Sprintf("stateless upstream %t", stateless), func(t *testing.T) { testDirectCall(t, stateless) })
	}
}

func testDirectCall(t *testing.T, statelessUpstream bool) {
	s := apptest.Start(t)
	up, aliceKey, bobKey := gatewaySetup(t, s, statelessUpstream)
	const streaming = `"_meta":{"progressToken":"p1","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
	body := func(name, args, meta string) string {
		return `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"` + name + `","arguments":` + args + `,` + meta + `}}`
	}
	for _, c := range []struct {
		name, key, tool, args, want string
	}{
		{"allowed", aliceKey, "fin.lookup", `{"id":"7"}`, `"name":"Ada Lovelace"`},
		{"big integer kept", aliceKey, "fin.lookup", `{"id":"12345678901234567890"}`, `12345678901234567890`},
		{"not permitted", bobKey, "fin.pay", `{"amount":1,"to":"x"}`, `unknown tool`},
		{"hidden", aliceKey, "fin.delete_all", `{}`, `unknown tool`},
		{"missing", aliceKey, "fin.nope", `{}`, `unknown tool`},
		{"bad arguments", aliceKey, "fin.lookup", `{"id":7}`, `invalid arguments`},
		{"no arguments", aliceKey, "fin.lookup", `null`, `invalid arguments`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := modernHeaders("tools/call", c.tool)
			h["X-Request-ID"] = "direct-" + strings.ReplaceAll(c.name, " ", "-")
			fast := rpc(t, s, c.key, body(c.tool, c.args, modern), h)
			fastRecords := h["X-Request-ID"]
			h["X-Request-ID"] = "sdk-" + strings.ReplaceAll(c.name, " ", "-")
			slow := rpc(t, s, c.key, body(c.tool, c.args, streaming), h)
			// 2026-07-28 answers some errors with an HTTP status and a
			// plain JSON body on either path; results stream on the SDK's.
			if ct := fast.Header.Get("Content-Type"); fast.Status != slow.Status || ct != "application/json" {
				t.Fatalf("direct path: %d %s %s; SDK path: %d", fast.Status, ct, fast.Body, slow.Status)
			}
			if ct := slow.Header.Get("Content-Type"); slow.Status == 200 && ct != "text/event-stream" {
				t.Fatalf("SDK path: %d %s %s", slow.Status, ct, slow.Body)
			}
			if !strings.Contains(string(fast.Body), c.want) {
				t.Errorf("direct path answered %s, want %s", fast.Body, c.want)
			}
			if f, sl := rpcMessage(t, fast), rpcMessage(t, slow); !reflect.DeepEqual(f, sl) {
				t.Errorf("the paths differ:\ndirect %s\nSDK    %v", fast.Body, sl)
			}
			if f, sl := onRecord(t, s, fastRecords), onRecord(t, s, h["X-Request-ID"]); len(f) == 0 || !slices.Equal(f, sl) {
				t.Errorf("records differ:\ndirect %q\nSDK    %q", f, sl)
			}
		})
	}
	// The upstream got the client's arguments as sent, digits and all.
	if calls := up.Calls(); len(calls) < 4 || fmt.Sprint(calls[2].Args["id"]) != "12345678901234567890" {
		t.Errorf("upstream saw %+v", calls)
	}
}

// onRecord lists what the audit log says about one request: event,
// outcome, reason and decision of each record.
func onRecord(t *testing.T, s *apptest.Server, requestID string) []string {
	t.Helper()
	var page adminapi.AuditPage
	s.Do("GET", "/api/v1/audit?request_id="+requestID, s.AdminKey, nil).JSON(t, &page)
	var out []string
	for _, r := range page.Records {
		out = append(out, fmt.Sprint(r.Event, " ", r.Outcome, " ", r.Reason, " ", r.Detail["decision"], " ", r.Detail["args_sha256"]))
	}
	return out
}

// rpcMessage extracts the one JSON-RPC response from a JSON body or an
// event stream.
func rpcMessage(t *testing.T, r apptest.Response) map[string]any {
	t.Helper()
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		var v map[string]any
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatalf("no JSON-RPC response in %d %q: %v", r.Status, r.Body, err)
		}
		return v
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		var v map[string]any
		if d, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(d), &v) == nil && v["method"] == nil {
			return v
		}
	}
	t.Fatalf("no JSON-RPC response in %d %q", r.Status, r.Body)
	return nil
}

// A 2025 session's GET stream, open before its key is revoked, is ended by
// the revocation; another user's stream stays open.
func TestRevocationEndsStreams(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	_, aliceKey, bobKey := gatewaySetup(t, s, false)
	open := func(key string) <-chan struct{} {
		t.Helper()
		r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
			map[string]string{"Mcp-Protocol-Version": "2025-11-25"})
		sid := r.Header.Get("Mcp-Session-Id")
		if sid == "" {
			t.Fatalf("no session: %d %s", r.Status, r.Body)
		}
		h := map[string]string{"Mcp-Protocol-Version": "2025-11-25", "Mcp-Session-Id": sid}
		if r := rpc(t, s, key, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, h); r.Status != http.StatusAccepted {
			t.Fatalf("initialized: %d %s", r.Status, r.Body)
		}
		req, _ := http.NewRequest("GET", s.URL+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Accept", "text/event-stream")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET stream: %v %v", resp, err)
		}
		ended := make(chan struct{})
		go func() {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			close(ended)
		}()
		t.Cleanup(func() { resp.Body.Close() })
		return ended
	}
	alice, bob := open(aliceKey), open(bobKey)
	mustStatus(t, s.Do("POST", "/api/v1/keys/"+strings.Split(aliceKey, "_")[1]+"/revoke", s.AdminKey, nil), http.StatusOK)
	select {
	case <-alice:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked key's stream is still open")
	}
	select {
	case <-bob:
		t.Error("another key's stream was ended")
	case <-time.After(300 * time.Millisecond):
	}
}

// A request addressed to a non-loopback host name on the loopback listener
// (DNS rebinding without an Origin) is refused on the direct path as the
// SDK refuses it on its own.
func TestDirectPathKeepsRebindingCheck(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	_, aliceKey, _ := gatewaySetup(t, s, true)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},` + modern + `}}`
	for host, want := range map[string]int{"evil.example:80": http.StatusForbidden, "localhost": http.StatusOK} {
		req, _ := http.NewRequest("POST", s.URL+"/mcp", strings.NewReader(body))
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+aliceKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range modernHeaders("tools/call", "fin.lookup") {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
