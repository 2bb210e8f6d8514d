package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/govern"
)

// What parseMessage refuses never reaches the SDK: a malformed message is
// answered 400 and recorded, a method off the allow-list is answered as
// the client's revision answers an unserved method (404 for 2026-07-28, a
// JSON-RPC error in a 200 before) and recorded as such, a body over the
// limit is 413.
func TestMessageRefusals(t *testing.T) {
	d := newDoor(t, func(c *Config) { c.MaxBodyBytes = 4096 })
	for _, c := range []struct {
		name, body string
		h          http.Header
		status     int
		code       int64
		event      string
		reason     string
	}{
		{"batch", `[` + ping + `]`, nil, 400, jsonrpc.CodeInvalidRequest, edge.EventRequestRefused, "message-malformed"},
		{"duplicate member", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, nil, 400, jsonrpc.CodeParseError, edge.EventRequestRefused, "message-malformed"},
		{"case-variant member", `{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/list"}`, nil, 400, jsonrpc.CodeInvalidRequest, edge.EventRequestRefused, "message-malformed"},
		{"unknown call parameter", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shop.lookup","tool":"shop.route"}}`, nil, 400, jsonrpc.CodeInvalidRequest, edge.EventRequestRefused, "message-malformed"},
		{"colliding _meta", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"a":1,"A":2}}}`, nil, 400, jsonrpc.CodeInvalidParams, edge.EventRequestRefused, "message-malformed"},
		{"not JSON", `ping`, nil, 400, jsonrpc.CodeParseError, edge.EventRequestRefused, "message-malformed"},
		{"unserved method, 2025", `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"x:y"}}`, nil, 200, jsonrpc.CodeMethodNotFound, EventMethodRefused, "method-not-allowed"},
		{"unserved method, 2026-07-28 header", `{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}`, modern("sampling/createMessage", ""), 404, jsonrpc.CodeMethodNotFound, EventMethodRefused, "method-not-allowed"},
		{"unserved method, 2026-07-28 _meta", `{"jsonrpc":"2.0","id":1,"method":"tasks/list","params":{` + modernMeta + `}}`, nil, 404, jsonrpc.CodeMethodNotFound, EventMethodRefused, "method-not-allowed"},
		{"too large", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"x":"` + strings.Repeat("a", 4096) + `"}}}`, nil, 413, jsonrpc.CodeInvalidRequest, edge.EventRequestRefused, "body-too-large"},
	} {
		h := http.Header{"X-Request-Id": {idOf("msg", c.name)}}
		for k, v := range c.h {
			h[k] = v
		}
		r := d.post(t, aliceKey, c.body, h)
		if r.Code != c.status {
			t.Errorf("%s: %d %s", c.name, r.Code, r.Body)
			continue
		}
		if code, _ := rpcErrorOf(t, r); int64(code) != c.code {
			t.Errorf("%s: code %v, want %d", c.name, code, c.code)
		}
		recs := d.audit.request(h.Get("X-Request-Id"))
		if len(recs) != 1 || recs[0].Event != c.event || recs[0].Reason != c.reason || recs[0].Actor != "alice" {
			t.Errorf("%s: recorded %+v", c.name, recs)
		}
	}
	if d.up.count() != 0 {
		t.Error("a refused message reached the upstream")
	}
}

// Era dispatch: a request reaches the stateless (2026-07-28) handler when
// its Mcp-Protocol-Version or its _meta says so, else the session handler;
// each answers in its own way, which is what is checked here.
func TestEraDispatch(t *testing.T) {
	d := newDoor(t)
	const list = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	listModern := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + modernMeta + `}}`
	for _, c := range []struct {
		name, body string
		h          http.Header
		status     int
		says       string // in the body
	}{
		// The session handler wants an initialize first.
		{"no version", list, nil, 200, "invalid during session initialization"},
		{"2025-11-25 header", list, legacy(""), 200, "invalid during session initialization"},
		{"2025-06-18 header", list, http.Header{"Mcp-Protocol-Version": {"2025-06-18"}}, 200, "invalid during session initialization"},
		// The stateless handler serves it, or words its own refusal.
		{"2026-07-28 header and _meta", listModern, modern("tools/list", ""), 200, `"resultType":"complete"`},
		{"2026-07-28 header, no _meta", list, modern("tools/list", ""), 400, "missing or invalid _meta field"},
		{"_meta, no header", listModern, nil, 400, "Mcp-Protocol-Version header is required"},
		{"_meta, 2025 header", listModern, legacy(""), 400, "Mcp-Protocol-Version"},
	} {
		r := d.post(t, aliceKey, c.body, c.h)
		if r.Code != c.status || !strings.Contains(r.Body.String(), c.says) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, r.Code, r.Body, c.status, c.says)
		}
		if sid := r.Header().Get("Mcp-Session-Id"); sid != "" {
			t.Errorf("%s: a session %s without initialize", c.name, sid)
		}
	}
	// A 2025 initialize opens a session; tools/call within it is governed
	// as a 2025 call, and a 2026-07-28 one as such.
	sid := d.session(t, aliceKey)
	if r := d.post(t, aliceKey, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shop.lookup","arguments":{}}}`, legacy(sid)); r.Code != 200 || !strings.Contains(r.Body.String(), `"text":"ok"`) {
		t.Fatalf("call in a session: %d %s", r.Code, r.Body)
	}
	if r := d.post(t, aliceKey, callBody("shop.lookup", `{}`, modernMeta), modern("tools/call", "shop.lookup")); r.Code != 200 {
		t.Fatalf("2026-07-28 call: %d %s", r.Code, r.Body)
	}
	if !slices.Equal(d.up.modern, []bool{false, true}) {
		t.Errorf("the upstream saw modern=%v, want [false true]", d.up.modern)
	}
}

// A plain 2026-07-28 tools/call is answered on the direct path, and
// exactly as the SDK path answers it (the same call asking for progress,
// which only the SDK serves): the same JSON-RPC message, the same status,
// the same records.
func TestDirectMatchesSDK(t *testing.T) {
	d := newDoor(t)
	for _, c := range []struct{ name, key, tool, args, want string }{
		{"allowed", aliceKey, "shop.lookup", `{"n":1}`, `"text":"ok"`},
		{"no arguments", aliceKey, "shop.lookup", `null`, `"text":"ok"`},
		{"number beyond 2^53", aliceKey, "shop.lookup", `{"n":12345678901234567890}`, `where JSON readers disagree`},
		{"not permitted", bobKey, "shop.route", `{}`, `unknown tool`},
		{"missing", aliceKey, "shop.nope", `{}`, `unknown tool`},
		{"bad arguments", aliceKey, "shop.lookup", `{"n":"one"}`, `invalid arguments`},
		{"ambiguous arguments", aliceKey, "shop.lookup", `{"n":1,"N":2}`, `invalid arguments`},
		{"policy deny", aliceKey, "shop.lookup", `{"mode":"deny"}`, `Not this mode.`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := modern("tools/call", c.tool)
			h.Set("X-Request-Id", idOf("direct", c.name))
			fast := d.post(t, c.key, callBody(c.tool, c.args, modernMeta), h)
			h.Set("X-Request-Id", idOf("sdk", c.name))
			slow := d.post(t, c.key, callBody(c.tool, c.args, streamingMeta), h)
			if ct := fast.Header().Get("Content-Type"); ct != "application/json" || fast.Code != slow.Code {
				t.Fatalf("direct: %d %s %s; SDK: %d %s", fast.Code, ct, fast.Body, slow.Code, slow.Body)
			}
			if ct := slow.Header().Get("Content-Type"); slow.Code == 200 && ct != "text/event-stream" {
				t.Fatalf("the SDK did not answer: %s %s", ct, slow.Body)
			}
			if !strings.Contains(fast.Body.String(), c.want) {
				t.Errorf("direct answered %s, want %s", fast.Body, c.want)
			}
			// A tool error names its request; the ids differ on purpose.
			fast.Body = bytes.NewBufferString(strings.ReplaceAll(fast.Body.String(), idOf("direct", c.name), "ID"))
			slow.Body = bytes.NewBufferString(strings.ReplaceAll(slow.Body.String(), idOf("sdk", c.name), "ID"))
			if f, s := rpcMessage(t, fast), rpcMessage(t, slow); !reflect.DeepEqual(f, s) {
				t.Errorf("the paths differ:\ndirect %s\nSDK    %s", fast.Body, slow.Body)
			}
			summary := func(id string) []string {
				var out []string
				for _, r := range d.audit.request(id) {
					out = append(out, fmt.Sprint(r.Event, " ", r.Outcome, " ", r.Reason, " ", r.Target, " ", r.Detail["args_sha256"]))
				}
				return out
			}
			if f, s := summary(idOf("direct", c.name)), summary(idOf("sdk", c.name)); len(f) == 0 || !slices.Equal(f, s) {
				t.Errorf("records differ:\ndirect %q\nSDK    %q", f, s)
			}
		})
	}
}

// Only a plain call takes the direct path: anything that needs the SDK's
// machinery, or that the SDK would word a refusal of, goes to the SDK.
func TestDirectSelection(t *testing.T) {
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	plain := func(params string) string {
		return `{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"shop.lookup",` + params + `}}`
	}
	headers := func(mod func(http.Header)) http.Header {
		h := modern("tools/call", "shop.lookup")
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
		if mod != nil {
			mod(h)
		}
		return h
	}
	for _, c := range []struct {
		name, body string
		h          http.Header
		direct     bool
	}{
		{"plain", plain(`"arguments":{},` + meta), headers(nil), true},
		{"no arguments", plain(meta), headers(nil), true},
		{"client info", plain(`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"x","version":"1"}}`), headers(nil), true},
		{"answers and state", plain(`"inputResponses":{},"requestState":"s",` + meta), headers(nil), true},
		{"Accept */*", plain(meta), headers(func(h http.Header) { h.Set("Accept", "*/*") }), true},
		{"a notification", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"shop.lookup",` + meta + `}}`, headers(nil), false},
		{"progress", plain(`"_meta":{"progressToken":1,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`), headers(nil), false},
		{"log level", plain(`"_meta":{"io.modelcontextprotocol/logLevel":"debug","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`), headers(nil), false},
		{"task", plain(`"task":{},` + meta), headers(nil), false},
		{"builtin tool", `{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"discover_tools",` + meta + `}}`, headers(func(h http.Header) { h.Set("Mcp-Name", "discover_tools") }), false},
		{"other version", plain(meta), headers(func(h http.Header) { h.Set("Mcp-Protocol-Version", "2026-12-01") }), false},
		{"_meta version differs", plain(`"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}`), headers(nil), false},
		{"Mcp-Name differs", plain(meta), headers(func(h http.Header) { h.Set("Mcp-Name", "shop.route") }), false},
		{"Mcp-Method differs", plain(meta), headers(func(h http.Header) { h.Set("Mcp-Method", "tools/list") }), false},
		{"no Mcp-Method", plain(meta), headers(func(h http.Header) { h.Del("Mcp-Method") }), false},
		{"Last-Event-ID", plain(meta), headers(func(h http.Header) { h.Set("Last-Event-ID", "1") }), false},
		{"JSON only", plain(meta), headers(func(h http.Header) { h.Set("Accept", "application/json") }), false},
		{"not JSON", plain(meta), headers(func(h http.Header) { h.Set("Content-Type", "text/plain") }), false},
		{"no capabilities", plain(`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`), headers(nil), false},
		{"capabilities not an object", plain(`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}`), headers(nil), false},
		{"capabilities off the schema", plain(`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":7}}`), headers(nil), false},
		{"client info off the schema", plain(`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":"x"}`), headers(nil), false},
		{"arguments not an object", plain(`"arguments":[1],` + meta), headers(nil), false},
		{"answers not an object", plain(`"inputResponses":[],` + meta), headers(nil), false},
		{"state not a string", plain(`"requestState":7,` + meta), headers(nil), false},
	} {
		m, err := parseMessage([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, ok := direct(c.h, m); ok != c.direct {
			t.Errorf("%s: direct %t, want %t", c.name, ok, c.direct)
		}
	}
}

// Mcp-Param-* headers of a 2026-07-28 tools/call must agree with the
// arguments the pinned schema binds them to: a mismatch is refused 400
// with -32020 on record, before the upstream. For a tool the caller may
// not call nothing is checked: the answer is the unknown tool's.
func TestParamHeaderMismatch(t *testing.T) {
	d := newDoor(t)
	call := func(key, region, header string) (int, float64, string, string) {
		h := modern("tools/call", "shop.route")
		id := idOf("param", key+region+header)
		h.Set("X-Request-Id", id)
		if header != "" {
			h.Set("Mcp-Param-Region", header)
		}
		r := d.post(t, key, callBody("shop.route", `{"region":"`+region+`"}`, modernMeta), h)
		var code float64
		var msg string
		if m := rpcMessage(t, r); m["error"] != nil {
			code, msg = rpcErrorOf(t, r)
		}
		return r.Code, code, msg, id
	}
	status, code, msg, id := call(aliceKey, "eu", "us")
	if status != 400 || code != codeHeaderMismatch || !strings.Contains(msg, "Mcp-Param-Region does not match") {
		t.Errorf("mismatch: %d %v %q", status, code, msg)
	}
	if recs := d.audit.request(id); len(recs) != 1 || recs[0].Event != govern.EventToolCall || recs[0].Reason != govern.ReasonHeaderMismatch || recs[0].Target != "tool:shop.route" {
		t.Errorf("recorded %+v", recs)
	}
	if status, code, _, _ := call(aliceKey, "eu", ""); status != 400 || code != codeHeaderMismatch {
		t.Errorf("missing header: %d %v", status, code)
	}
	if d.up.count() != 0 {
		t.Fatal("a mismatched call reached the upstream")
	}
	if status, code, _, _ := call(aliceKey, "eu", "=?base64?ZXU=?="); status != 200 || code != 0 {
		t.Errorf("matching header: %d %v", status, code)
	}
	_, hiddenCode, hiddenMsg, id := call(bobKey, "eu", "us")
	_, missingCode, missingMsg, _ := call(bobKey, "eu", "")
	if hiddenCode != missingCode || hiddenMsg != missingMsg || !strings.Contains(hiddenMsg, `unknown tool "shop.route"`) {
		t.Errorf("a hidden tool's headers were checked: %v %q, vs %v %q", hiddenCode, hiddenMsg, missingCode, missingMsg)
	}
	for _, r := range d.audit.request(id) {
		if r.Reason == govern.ReasonHeaderMismatch {
			t.Errorf("a hidden tool's mismatch on record: %+v", r)
		}
	}
}
