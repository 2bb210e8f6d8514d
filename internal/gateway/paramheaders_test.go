package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/catalog"
)

func TestCheckParamHeaders(t *testing.T) {
	bindings := catalog.ParamHeaders(json.RawMessage(`{"inputSchema":{"type":"object","properties":{
		"region":{"type":"string","x-mcp-header":"Region"},
		"count":{"type":"integer","x-mcp-header":"Count"},
		"dry":{"type":"boolean","x-mcp-header":"Dry"},
		"opts":{"type":"object","properties":{"tenant":{"type":"string","x-mcp-header":"Tenant"}}},
		"note":{"type":"string"}}}}`))
	if len(bindings) != 4 {
		t.Fatalf("bindings: %+v", bindings)
	}
	args := func(s string) map[string]any {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		args    string
		ok      bool
	}{
		{"all match", map[string]string{"Mcp-Param-Region": "eu-west-1", "Mcp-Param-Count": "3", "Mcp-Param-Dry": "false", "Mcp-Param-Tenant": "acme"},
			`{"region":"eu-west-1","count":3,"dry":false,"opts":{"tenant":"acme"},"note":"x"}`, true},
		{"nothing annotated sent", nil, `{"note":"x"}`, true},
		{"base64", map[string]string{"Mcp-Param-Region": "=?base64?SGVsbG8=?="}, `{"region":"Hello"}`, true},
		{"literal without suffix", map[string]string{"Mcp-Param-Region": "=?base64?SGVsbG8="}, `{"region":"=?base64?SGVsbG8="}`, true},
		{"number by value", map[string]string{"Mcp-Param-Count": "3.0"}, `{"count":3}`, true},
		{"bad padding", map[string]string{"Mcp-Param-Region": "=?base64?SGVsbG8?="}, `{"region":"Hello"}`, false},
		{"bad alphabet", map[string]string{"Mcp-Param-Region": "=?base64?SGVs!!!bG8=?="}, `{"region":"Hello"}`, false},
		{"missing header", nil, `{"region":"eu"}`, false},
		{"header without argument", map[string]string{"Mcp-Param-Region": "eu"}, `{}`, false},
		{"mismatch", map[string]string{"Mcp-Param-Region": "us"}, `{"region":"eu"}`, false},
		{"nested mismatch", map[string]string{"Mcp-Param-Tenant": "evil"}, `{"opts":{"tenant":"acme"}}`, false},
		{"bool case", map[string]string{"Mcp-Param-Dry": "False"}, `{"dry":false}`, false},
		{"object where primitive expected", map[string]string{"Mcp-Param-Region": "x"}, `{"region":{"a":1}}`, false},
	} {
		h := http.Header{}
		for k, v := range c.headers {
			h.Set(k, v)
		}
		if err := checkParamHeaders(h, bindings, args(c.args)); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
