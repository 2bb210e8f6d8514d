package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

func TestParseMessage(t *testing.T) {
	ok := map[string]message{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.pay","arguments":{"a":1}}}`:                 {method: "tools/call", toolName: "fin.pay"},
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`:                                                         {method: "notifications/initialized"},
		`{"jsonrpc":"2.0","id":"x","result":{}}`:                                                                         {},
		`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"` + metaProtocolVersion + `":"2026-07-28"}}}`: {method: "tools/list", modern: true},
	}
	for in, want := range ok {
		m, err := parseMessage([]byte(in))
		if err != nil || m.method != want.method || m.toolName != want.toolName || m.modern != want.modern {
			t.Errorf("%s: %+v %v", in, m, err)
		}
	}
	refused := map[string]int64{
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`:                                                          jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/list"}`:                                      jsonrpc.CodeParseError,
		`{"jsonrpc":"1.0","id":1,"method":"ping"}`:                                                            jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":{},"method":"ping"}`:                                                           jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"Method":"ping"}`:                                                            jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///etc"}}`:              jsonrpc.CodeMethodNotFound,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u0000b"}}`:                         jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","NAME":"b"}}`:                     jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}`:                                  jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`:                                          jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call\n","params":{"name":"a"}}`:                              jsonrpc.CodeInvalidRequest,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\xc0\"}}":             jsonrpc.CodeParseError,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"result":{}}`:                    jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":1,"message":"x"}}`:                           jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`:                               jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1}`:                                                                            jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","result":{}}`:                                                                       jsonrpc.CodeInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"x":"1","X":"2"}}}`: jsonrpc.CodeInvalidParams,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"k":1,"K":2}}}`:          jsonrpc.CodeInvalidParams,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"n":1e-1000000}}}`:   jsonrpc.CodeParseError,
	}
	for in, code := range refused {
		_, err := parseMessage([]byte(in))
		if err == nil || err.Code != code {
			t.Errorf("%s: %v, want code %d", in, err, code)
		}
	}
}

// Whatever parseMessage accepts as a tools/call names exactly the tool that
// a standard decoder reads from the same bytes: no spelling of a name can
// reach a different tool than the one Ostiary authorized.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.pay","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.pay","Name":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.p\u0061y"}}`,
		`[{"jsonrpc":"2.0"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseMessage(body)
		if err != nil || m.method != "tools/call" {
			return
		}
		var std struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &std) != nil {
			t.Fatalf("accepted %q, which encoding/json rejects", body)
		}
		if std.Method != m.method || std.Params.Name != m.toolName {
			t.Fatalf("%q: authorized %q but a decoder reads %q", body, m.toolName, std.Params.Name)
		}
		if strings.ContainsRune(m.toolName, 0) {
			t.Fatalf("NUL in accepted name %q", m.toolName)
		}
	})
}
