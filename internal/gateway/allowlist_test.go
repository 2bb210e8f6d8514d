package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The method allow-list: each method the gateway serves is accepted, and
// anything else (a method that exists in MCP but is not relayed, a
// server-to-client method, a spelling variant) is errMethodUnknown, with
// what the door needs to answer it in the client's revision.
func TestMethodAllowList(t *testing.T) {
	params := map[string]string{
		"tools/call":     `{"name":"shop.lookup"}`,
		"prompts/get":    `{"name":"shop.greet"}`,
		"resources/read": `{"uri":"file:///a"}`,
	}
	for method := range allowedMethods {
		p := params[method]
		if p == "" {
			p = `{}`
		}
		m, err := parseMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + p + `}`))
		if err != nil || m.method != method {
			t.Errorf("%s: %+v %v", method, m, err)
		}
	}
	for _, method := range []string{
		"resources/subscribe", "resources/unsubscribe", "sampling/createMessage", "elicitation/create", "roots/list",
		"tasks/get", "tasks/list", "notifications/message", "notifications/tools/list_changed",
		"TOOLS/CALL", "tools/call/", " tools/call", "tools/Call", "", "rpc.discover",
	} {
		m, err := parseMessage([]byte(`{"jsonrpc":"2.0","id":7,"method":"` + method + `","params":{` + modernMeta + `}}`))
		if err != errMethodUnknown {
			t.Errorf("%q: %v, want method not found", method, err)
			continue
		}
		if m.method != method || m.id != json.Number("7") || !m.modern {
			t.Errorf("%q: the door cannot answer it: %+v", method, m)
		}
	}
}

// The parameters of the methods whose names the door reads are on
// allow-lists too, and what it reads is exactly what was sent.
func TestMessageParams(t *testing.T) {
	for _, c := range []struct {
		name, body string
		code       int64 // 0: accepted
	}{
		{"call with everything", `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"t","arguments":{"x":1},"_meta":{},"task":{},"inputResponses":{},"requestState":"s"}}`, 0},
		{"call without params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, jsonrpc.CodeInvalidRequest},
		{"call with an empty name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":""}}`, jsonrpc.CodeInvalidRequest},
		{"call with a DEL in its name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u007fb"}}`, jsonrpc.CodeInvalidRequest},
		{"call with a C1 control in its name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u0085b"}}`, jsonrpc.CodeInvalidRequest},
		{"call with a cursor", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","cursor":"x"}}`, jsonrpc.CodeInvalidRequest},
		// A call's arguments are the pipeline's to refuse, on record.
		{"call with colliding arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"to":"a","TO":"b"}}}`, 0},
		{"call with colliding arguments deeper", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"o":{"k":1,"K":2}}}}`, 0},
		{"prompt with a task", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","task":{}}}`, jsonrpc.CodeInvalidRequest},
		{"prompt without a name", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}`, jsonrpc.CodeInvalidRequest},
		{"read without a URI", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}`, jsonrpc.CodeInvalidRequest},
		{"read with an empty URI", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":""}}`, jsonrpc.CodeInvalidRequest},
		{"read with a newline in its URI", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a\nb"}}`, jsonrpc.CodeInvalidRequest},
		{"read with a number for a URI", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":7}}`, jsonrpc.CodeInvalidRequest},
		{"list with colliding params", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"a","Cursor":"b"}}`, jsonrpc.CodeInvalidParams},
		{"colliding top level", `{"jsonrpc":"2.0","id":1,"method":"ping","ID":2}`, jsonrpc.CodeInvalidRequest},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, jsonrpc.CodeInvalidRequest},
		{"bool id", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, jsonrpc.CodeInvalidRequest},
		{"no jsonrpc", `{"id":1,"method":"ping"}`, jsonrpc.CodeInvalidRequest},
		{"a string", `"ping"`, jsonrpc.CodeInvalidRequest},
		{"two messages", `{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}`, jsonrpc.CodeParseError},
		{"a lone surrogate", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\ud800"}}`, jsonrpc.CodeParseError},
		{"an error response", `{"jsonrpc":"2.0","id":"s-1","error":{"code":-1,"message":"no"}}`, 0},
	} {
		m, err := parseMessage([]byte(c.body))
		switch {
		case c.code == 0 && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.code != 0 && (err == nil || err.Code != c.code):
			t.Errorf("%s: %v, want code %d", c.name, err, c.code)
		case c.code == 0 && strings.Contains(c.body, `"method":"tools/call"`):
			var std struct {
				Params struct {
					Name      string         `json:"name"`
					Arguments map[string]any `json:"arguments"`
				} `json:"params"`
			}
			if json.Unmarshal([]byte(c.body), &std) != nil || m.toolName != std.Params.Name || len(m.args) != len(std.Params.Arguments) {
				t.Errorf("%s: read %q %v", c.name, m.toolName, m.args)
			}
			if _, ok := m.params["arguments"]; !ok {
				t.Errorf("%s: the arguments were dropped from params", c.name)
			}
		}
	}
}
