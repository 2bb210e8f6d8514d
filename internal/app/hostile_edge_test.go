package app_test

// The catalogue of attacks on what a request says: two readers of one
// request (Ostiary and the upstream, or two parts of Ostiary) must never
// disagree about it. Each case is the exact request an attacker sends and
// the observable that shows it held: the status and error the client
// gets, the audit record, and what the upstream received (nothing, or
// exactly the bytes that were hashed and decided on).

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

// rawHTTP writes one request, byte for byte, and reads the answer.
func rawHTTP(t *testing.T, s *apptest.Server, request string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(strings.ReplaceAll(request, "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

// withHeaders posts body to path with each header given as a list of
// values, every value sent as its own header line.
func withHeaders(t *testing.T, s *apptest.Server, path, body string, headers map[string][]string) apptest.Response {
	t.Helper()
	method := "POST"
	if strings.HasPrefix(path, "/api/") {
		method, body = "GET", ""
	}
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, vs := range headers {
		req.Header[k] = vs // verbatim: no canonicalisation that could merge them
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&b)
	return apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: []byte(b.String())}
}

// A header that decides who the caller is, which session, protocol or tool
// a request concerns, sent twice → 400 on /mcp and /api/v1, on record
// (event request-refused, reason header-repeated, the header's name and
// never its values), and the upstream receives nothing. Before, the first
// of two Authorization headers won.
func TestHostileRepeatedHeaders(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up, alice, bob := gatewaySetup(t, s, false)
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},` + modern + `}}`
	one := map[string][]string{"Authorization": {"Bearer " + alice}, "Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"fin.lookup"}}
	if r := withHeaders(t, s, "/mcp", call, one); r.Status != 200 {
		t.Fatalf("the same call with each header once: %d %s", r.Status, r.Body)
	}
	before := len(up.Calls())
	twice := map[string][]string{
		"Authorization":        {"Bearer " + alice, "Bearer " + bob},
		"Mcp-Session-Id":       {"a", "b"},
		"Mcp-Protocol-Version": {"2026-07-28", "2025-11-25"},
		"Mcp-Method":           {"tools/call", "tools/list"},
		"Mcp-Name":             {"fin.lookup", "fin.pay"},
		"Mcp-Param-Id":         {"1", "2"},
		"Origin":               {"http://localhost", "https://evil.example"},
	}
	for h, vs := range twice {
		for _, path := range []string{"/mcp", "/api/v1/whoami"} {
			hs := map[string][]string{}
			for k, v := range one {
				hs[k] = v
			}
			hs[h] = vs
			r := withHeaders(t, s, path, call, hs)
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), h) || !strings.Contains(string(r.Body), "more than once") {
				t.Errorf("%s twice on %s: %d %s", h, path, r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), alice) || strings.Contains(string(r.Body), bob) {
				t.Errorf("%s twice on %s: the answer repeats a key", h, path)
			}
		}
	}
	if n := len(up.Calls()) - before; n != 0 {
		t.Errorf("the upstream received %d refused calls", n)
	}
	recs := records(t, s, audit.Query{Event: "request-refused"})
	if len(recs) != 2*len(twice) {
		t.Errorf("request-refused records: %d, want %d", len(recs), 2*len(twice))
	}
	for _, r := range recs {
		if r.Reason != "header-repeated" || r.Detail["header"] == "" {
			t.Errorf("record: %s %v", r.Reason, r.Detail)
		}
		if b, _ := r.Canonical(); strings.Contains(string(b), alice[:20]) || strings.Contains(string(b), bob[:20]) {
			t.Errorf("a refusal record holds a key: %s", b)
		}
	}
}

// A body framed both by Content-Length and Transfer-Encoding (request
// smuggling's raw material) → 400, and so is any chunked body (Go's server
// drops Content-Length before a handler can see both). A body declared in
// another character set than UTF-8 → 415. Before, all three were served.
func TestHostileBodyFraming(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up, alice, _ := gatewaySetup(t, s, false)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},` + modern + `}}`
	head := func(path string) string {
		key := alice
		if path != "/mcp" {
			key = s.AdminKey
		}
		return "POST " + path + " HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer " + key +
			"\nAccept: application/json, text/event-stream\nMcp-Protocol-Version: 2026-07-28\nMcp-Method: tools/call\nMcp-Name: fin.lookup\nConnection: close\n"
	}
	before := len(up.Calls())
	for _, path := range []string{"/mcp", "/api/v1/roles"} {
		body := body
		if path != "/mcp" { // an admin write that must not happen
			body = `{"name":"smuggled","grants":["discover:*"]}`
		}
		chunked := fmt.Sprintf("%x\n%s\n0\n\n", len(body), body)
		cases := []struct {
			name, req string
			status    int
		}{
			{"Content-Length with Transfer-Encoding", head(path) + "Content-Type: application/json\nContent-Length: 4\nTransfer-Encoding: chunked\n\n" + chunked, 400},
			{"chunked", head(path) + "Content-Type: application/json\nTransfer-Encoding: chunked\n\n" + chunked, 400},
			{"charset latin-1", head(path) + "Content-Type: application/json; charset=iso-8859-1\n" + fmt.Sprintf("Content-Length: %d\n\n", len(body)) + body, 415},
			{"charset utf-16", head(path) + "Content-Type: application/json; charset=UTF-16LE\n" + fmt.Sprintf("Content-Length: %d\n\n", len(body)) + body, 415},
		}
		for _, c := range cases {
			if status, got := rawHTTP(t, s, c.req); status != c.status {
				t.Errorf("%s on %s: %d %s", c.name, path, status, got)
			}
		}
	}
	if n := len(up.Calls()) - before; n != 0 {
		t.Errorf("the upstream received %d refused calls", n)
	}
	if r := s.Do("GET", "/api/v1/roles", s.AdminKey, nil); strings.Contains(string(r.Body), "smuggled") {
		t.Errorf("a refused admin request created a role: %s", r.Body)
	}
	status, got := rawHTTP(t, s, head("/mcp")+"Content-Type: application/json; charset=utf-8\n"+fmt.Sprintf("Content-Length: %d\n\n", len(body))+body)
	if status != 200 || !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("utf-8, Content-Length: %d %s", status, got)
	}
	if n := len(records(t, s, audit.Query{Event: "request-refused"})); n != 8 {
		t.Errorf("request-refused records: %d, want 8", n)
	}
}

// Arguments holding two member names equal under case folding, at any
// depth, are invalid params before policy, whichever era and path the call
// takes; the refusal is recorded and the upstream receives nothing. Before,
// {"ms":1,"MS":3000} passed a rule on args.ms while a Go upstream read 3000.
func TestHostileCaseVariantArguments(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddSleeper()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "sleeper", []string{"invoke:fin.sleep"}, "alice", false)
	alice, _ := newKey(t, s, map[string]any{"user": "alice"})
	const rule = "version: 1\nrules:\n  - id: short-sleeps\n    when: tool.name == 'fin.sleep'\n    decision: allow\n" +
		"  - id: no-long-sleep\n    when: tool.name == 'fin.sleep' && 'ms' in args && args.ms > 100\n    decision: deny\n"
	mustStatus(t, s.Do("PUT", "/api/v1/policy", s.AdminKey, map[string]any{"source": rule}), http.StatusOK)
	variants := []string{
		`{"ms":1,"MS":3000}`,
		`{"ms":1,"Ms":3000}`,
		`{"ms":1,"nested":{"path":"a","Path":"/etc"}}`,
		`{"ms":1,"list":[{"id":1},{"sk":1,"\u017fK":2}]}`, // long s and the Kelvin sign
		`{"ms":1,"\u212aey":1,"key":2}`,
	}
	if r := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.sleep","arguments":{"ms":3000},`+modern+`}}`,
		modernHeaders("tools/call", "fin.sleep")); !strings.Contains(string(r.Body), "no-long-sleep") {
		t.Fatalf("the rule does not deny a long sleep: %d %s", r.Status, r.Body)
	}
	before := len(up.Calls())
	cs, err := s.Client(t, alice, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range variants {
		// 2026-07-28, raw (the direct path).
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.sleep","arguments":` + args + `,` + modern + `}}`
		r := rpc(t, s, alice, body, modernHeaders("tools/call", "fin.sleep"))
		if r.Status != 400 || !strings.Contains(string(r.Body), "-32602") || !strings.Contains(string(r.Body), "differ only in case") {
			t.Errorf("modern %s: %d %s", args, r.Status, r.Body)
		}
		// 2025-11-25 through a session, raw.
		legacy := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fin.sleep","arguments":` + args + `}}`
		init := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`, nil)
		sid := init.Header.Get("Mcp-Session-Id")
		r = rpc(t, s, alice, legacy, map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"})
		if !strings.Contains(string(r.Body), "-32602") || !strings.Contains(string(r.Body), "differ only in case") {
			t.Errorf("legacy %s: %d %s", args, r.Status, r.Body)
		}
	}
	// The official SDK client: its map cannot even hold the pair in one
	// spelling, so send what it can: both spellings at depth.
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.sleep", Arguments: map[string]any{"ms": 1, "o": map[string]any{"a": 1, "A": 2}}})
	if err == nil || !strings.Contains(err.Error(), "differ only in case") {
		t.Errorf("SDK client, nested pair: %v", err)
	}
	if n := len(up.Calls()) - before; n != 0 {
		t.Errorf("the upstream received %d ambiguous calls: %+v", n, up.Calls()[before:])
	}
	n := 0
	for _, r := range records(t, s, audit.Query{Event: "tool-call", Target: "tool:fin.sleep"}) {
		if r.Reason == "arguments-invalid" {
			n++
		}
	}
	if want := 2*len(variants) + 1; n != want {
		t.Errorf("arguments-invalid records: %d, want %d", n, want)
	}
}

// A request object that also carries result or error, and a response
// without exactly one of them, is an invalid request: no reader may take
// it for the other kind of message.
func TestHostileMessageShape(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up, alice, _ := gatewaySetup(t, s, false)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"}},"result":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"}},"error":{"code":1,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":1}`,
	} {
		r := rpc(t, s, alice, body, nil)
		if r.Status != 400 || !strings.Contains(string(r.Body), "-32600") {
			t.Errorf("%s: %d %s", body, r.Status, r.Body)
		}
	}
	if len(up.Calls()) != 0 {
		t.Errorf("the upstream received %d calls", len(up.Calls()))
	}
}

// Numbers: a huge exponent costs nothing (refused as it is parsed); a
// number the canonical form cannot carry exactly is refused as invalid
// params (12345678901234567890 and …891 once had one digest, so an approval
// for one ran the other); and what the upstream receives is exactly the
// canonical bytes whose SHA-256 is on record.
func TestHostileNumbers(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up, alice, _ := gatewaySetup(t, s, false)
	send := func(args string) apptest.Response {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.pay","arguments":` + args + `,` + modern + `}}`
		return rpc(t, s, alice, body, modernHeaders("tools/call", "fin.pay"))
	}
	start := time.Now()
	for _, args := range []string{`{"amount":1e-1000000,"to":"x"}`, `{"amount":[` + strings.Repeat(`1e-1000000,`, 19) + `1e-1000000],"to":"x"}`,
		`{"amount":1` + strings.Repeat("0", 120) + `,"to":"x"}`} {
		if r := send(args); r.Status != 400 || !strings.Contains(string(r.Body), "number") {
			t.Errorf("%.60s: %d %s", args, r.Status, r.Body)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("three refused numbers took %s", took)
	}
	for _, args := range []string{`{"amount":12345678901234567890,"to":"x"}`, `{"amount":12345678901234567891,"to":"x"}`,
		`{"amount":9007199254740993,"to":"x"}`, `{"amount":0.10000000000000000001,"to":"x"}`, `{"amount":1e16,"to":"x"}`} {
		r := send(args)
		if r.Status != 400 || !strings.Contains(string(r.Body), "-32602") || !strings.Contains(string(r.Body), "send it as a string") {
			t.Errorf("%s: %d %s", args, r.Status, r.Body)
		}
	}
	if len(up.Calls()) != 0 {
		t.Fatalf("the upstream received %d calls", len(up.Calls()))
	}
	// Accepted numbers reach the upstream in their canonical text, members
	// in canonical order: the bytes hashed are the bytes sent.
	const sent, canonical = `{ "to" : "x", "amount" : 15E-1 }`, `{"amount":1.5,"to":"x"}`
	if r := send(sent); r.Status != 200 {
		t.Fatalf("%s: %d %s", sent, r.Status, r.Body)
	}
	calls := up.Calls()
	if len(calls) != 1 || calls[0].Raw != canonical {
		t.Fatalf("the upstream received %+v, want %s", calls, canonical)
	}
	sum := sha256.Sum256([]byte(canonical))
	var digests []any
	for _, r := range records(t, s, audit.Query{Event: "tool-call", Target: "tool:fin.pay", Outcome: audit.Success}) {
		digests = append(digests, r.Detail["args_sha256"])
	}
	if len(digests) != 1 || digests[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("args_sha256 on record %v, want the digest of %s", digests, canonical)
	}
}
