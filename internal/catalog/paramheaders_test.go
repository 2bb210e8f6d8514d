package catalog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/strictjson"
)

// Annotations are found at any depth and only under their exact names:
// JSON Schema keywords are case-sensitive, and a header bound here that
// the upstream's schema does not annotate would be demanded of every
// client and sent to the upstream.
func TestParamHeaders(t *testing.T) {
	headers := func(def string) []string {
		var out []string
		for _, b := range ParamHeaders(json.RawMessage(def)) {
			out = append(out, strings.Join(b.Path, ".")+"="+b.Header)
		}
		slices.Sort(out)
		return out
	}
	for def, want := range map[string][]string{
		`{"inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"note":{"type":"string"},` +
			`"opts":{"type":"object","properties":{"tenant":{"type":"string","x-mcp-header":"Tenant"}}}}}}`: {"opts.tenant=Mcp-Param-Tenant", "region=Mcp-Param-Region"},
		`{"inputSchema":{"properties":{"a":{"X-MCP-Header":"A"},"b":{"x-mcp-header":"B"}}}}`:          {"b=Mcp-Param-B"},
		`{"inputSchema":{"properties":{"a":{"x-mcp-header":"A","X-Mcp-Header":"Z"}}}}`:                {"a=Mcp-Param-A"},
		`{"inputSchema":{"Properties":{"a":{"x-mcp-header":"A"}}}}`:                                   nil,
		`{"InputSchema":{"properties":{"a":{"x-mcp-header":"A"}}}}`:                                   nil,
		`{"inputSchema":{"properties":{"a":{"x-mcp-header":""},"b":null,"c":{"x-mcp-header":null}}}}`: nil,
		`{"inputSchema":{"properties":{"a":{"x-mcp-header":"A"},"b":{"x-mcp-header":1}}}}`:            nil, // a wrong type: none at all, as before
		`{"inputSchema":{"properties":{"a":{"x-mcp-header":"A"},"b":[]}}}`:                            nil,
		`{"inputSchema":{"properties":[]}}`:                                                           nil,
		`{"inputSchema":null}`:                                                                        nil,
		`{"inputSchema":{"properties":{"a":{"x-mcp-header":"A"}}},"inputSchema":{}}`:                  nil, // not one reading
		`not json`: nil,
	} {
		if got := headers(def); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", def, got, want)
		}
	}
}

// FuzzParamHeaders: from any definition, every binding found names a
// Mcp-Param-* header and a non-empty property path that the definition's
// input schema really annotates with that header.
func FuzzParamHeaders(f *testing.F) {
	f.Add([]byte(`{"inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},` +
		`"opts":{"type":"object","properties":{"tenant":{"x-mcp-header":"Tenant"}}}}}}`))
	f.Add([]byte(`{"inputSchema":{"properties":{"a":{"x-mcp-header":""},"b":{"x-mcp-header":1}}}}`))
	f.Add([]byte(`{"inputSchema":[]}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"inputSchema":{"properties":{"a":{"X-MCP-Header":"A"},"b":{"Properties":{"c":{"x-mcp-header":"C"}}}}}}`))
	f.Fuzz(func(t *testing.T, def []byte) {
		bindings := ParamHeaders(json.RawMessage(def))
		if len(bindings) == 0 {
			return
		}
		tree, err := strictjson.Parse(def)
		if err != nil {
			return // encoding/json read it; the strict parser does not: nothing to compare against
		}
		for _, b := range bindings {
			name, ok := strings.CutPrefix(b.Header, "Mcp-Param-")
			if !ok || name == "" || len(b.Path) == 0 {
				t.Fatalf("binding %+v from %s", b, def)
			}
			node, _ := tree.(map[string]any)["inputSchema"].(map[string]any)
			for _, p := range b.Path {
				props, _ := node["properties"].(map[string]any)
				node, _ = props[p].(map[string]any)
			}
			if node["x-mcp-header"] != name {
				t.Fatalf("binding %+v: the schema annotates %v there, in %s", b, node["x-mcp-header"], def)
			}
		}
	})
}
