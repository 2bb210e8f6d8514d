package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

// codeHeaderMismatch is the JSON-RPC error of a request whose HTTP headers
// disagree with its body (2026-07-28, SEP-2243).
const codeHeaderMismatch = -32020

// headerProp is what x-mcp-header processing needs of a schema property.
type headerProp struct {
	Type       string                `json:"type"`
	Header     string                `json:"x-mcp-header"`
	Properties map[string]headerProp `json:"properties"`
}

// paramBinding is one argument (by property path) mirrored in a header.
type paramBinding struct {
	path   []string
	header string // Mcp-Param-<name>
}

// paramBindings lists the x-mcp-header annotations of a pinned input
// schema, nested object properties included.
func paramBindings(schema any) []paramBinding {
	raw, err := json.Marshal(schema)
	if err != nil {
		return nil
	}
	var root headerProp
	if json.Unmarshal(raw, &root) != nil {
		return nil
	}
	var out []paramBinding
	var walk func(props map[string]headerProp, prefix []string)
	walk = func(props map[string]headerProp, prefix []string) {
		for name, p := range props {
			path := append(append([]string(nil), prefix...), name)
			if p.Header != "" {
				out = append(out, paramBinding{path: path, header: "Mcp-Param-" + p.Header})
			}
			if len(p.Properties) > 0 {
				walk(p.Properties, path)
			}
		}
	}
	walk(root.Properties, nil)
	return out
}

// checkParamHeaders verifies a 2026-07-28 tools/call's Mcp-Param-* headers
// against its arguments for each x-mcp-header of the pinned schema: the
// header is present exactly when the argument is (and not null), decodes
// (a "=?base64?…?=" value is strict Base64; anything else is literal), and
// equals the argument. Errors are safe to show.
func checkParamHeaders(h http.Header, schema any, args map[string]any) error {
	for _, b := range paramBindings(schema) {
		val, present := lookupPath(args, b.path)
		hv, sent := h[http.CanonicalHeaderKey(b.header)]
		where := strings.Join(b.path, ".")
		if !present || val == nil {
			if sent {
				return fmt.Errorf("header mismatch: %s sent for absent or null argument %q", b.header, where)
			}
			continue
		}
		if !sent || len(hv) != 1 {
			return fmt.Errorf("header mismatch: argument %q needs exactly one %s header", where, b.header)
		}
		decoded, ok := decodeParam(strings.Trim(hv[0], " \t"))
		if !ok {
			return fmt.Errorf("header mismatch: %s is not valid Base64", b.header)
		}
		if !paramEqual(decoded, val) {
			return fmt.Errorf("header mismatch: %s does not match argument %q", b.header, where)
		}
	}
	return nil
}

func lookupPath(args map[string]any, path []string) (any, bool) {
	var cur any = args
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func decodeParam(v string) (string, bool) {
	if enc, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if enc, ok = strings.CutSuffix(enc, "?="); ok {
			b, err := base64.StdEncoding.Strict().DecodeString(enc)
			return string(b), err == nil
		}
	}
	return v, true
}

// paramEqual compares a decoded header with a primitive argument: strings
// exactly, booleans as true/false, numbers by value.
func paramEqual(h string, v any) bool {
	switch v := v.(type) {
	case string:
		return h == v
	case bool:
		return h == fmt.Sprint(v)
	case json.Number:
		a, okA := new(big.Rat).SetString(h)
		b, okB := new(big.Rat).SetString(v.String())
		return okA && okB && a.Cmp(b) == 0
	}
	return false
}
