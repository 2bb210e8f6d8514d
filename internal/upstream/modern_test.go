package upstream

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// The response to a request is found on an event stream among
// notifications and other ids, however long its line.
func TestResponseEvent(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	stream := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":7,\r\ndata: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"" + big + "\"}]}}\r\n\r\n"
	msg, err := responseEvent(strings.NewReader(stream), "7", 16<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := decodeResponse(msg, "7")
	if err != nil || !json.Valid(res) || len(res) < len(big) {
		t.Fatalf("result %.80s: %v", res, err)
	}
	if _, err := responseEvent(strings.NewReader(stream[:200]), "7", 16<<20, nil); err == nil {
		t.Error("a stream that ends before the answer gave no error")
	}
	if _, err := decodeResponse([]byte(`{"jsonrpc":"2.0","id":8,"result":{}}`), "7"); err == nil {
		t.Error("another request's response was taken")
	}
	if _, err := decodeResponse([]byte(`{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no"}}`), "7"); !answeredErr(err) || !Answered(err) {
		t.Errorf("an error answer is not an answer: %v", err)
	}
}

// Mcp-Param-* values are encoded as SEP-2243 says.
func TestParamHeaderValues(t *testing.T) {
	args := map[string]any{"region": "eu-west", "n": json.Number("42"), "f": json.Number("1.5"), "ok": true,
		"name": "Zoë", "pad": " x", "nested": map[string]any{"id": "a"}, "null": nil}
	got := paramHeaderValues([]spec.ParamHeader{{Path: []string{"region"}, Header: "Mcp-Param-Region"}, {Path: []string{"n"}, Header: "Mcp-Param-N"},
		{Path: []string{"f"}, Header: "Mcp-Param-F"}, {Path: []string{"ok"}, Header: "Mcp-Param-Ok"}, {Path: []string{"name"}, Header: "Mcp-Param-Name"},
		{Path: []string{"pad"}, Header: "Mcp-Param-Pad"}, {Path: []string{"nested", "id"}, Header: "Mcp-Param-Id"},
		{Path: []string{"null"}, Header: "Mcp-Param-Null"}, {Path: []string{"missing"}, Header: "Mcp-Param-Missing"}}, args)
	want := map[string]string{"Mcp-Param-Region": "eu-west", "Mcp-Param-N": "42", "Mcp-Param-Ok": "true",
		"Mcp-Param-Name": "=?base64?Wm/Dqw==?=", "Mcp-Param-Pad": "=?base64?IHg=?=", "Mcp-Param-Id": "a"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// FuzzUpstreamAnswer: whatever an upstream sends as its answer, reading it
// returns the response to the request or an error, and never panics.
func FuzzUpstreamAnswer(f *testing.F) {
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n"))
	f.Add([]byte("data: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"x\",\"data\":{}}}\n\n"))
	f.Add([]byte("event: message\ndata: {\"method\":\"notifications/progress\"}\n\ndata: [1,2]\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if msg, err := responseEvent(strings.NewReader(string(b)), "7", 1<<20, nil); err == nil {
			res, err := decodeResponse(msg, "7")
			if err == nil && (len(res) == 0 || res[0] != '{' || !json.Valid(res)) {
				t.Errorf("result %q from %q", res, b)
			}
		}
		if res, err := decodeResponse(b, "7"); err == nil && !json.Valid(res) {
			t.Errorf("result %q from %q", res, b)
		}
	})
}
