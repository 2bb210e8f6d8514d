package catalog

import (
	"encoding/json"

	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// ParamHeader is a tool argument mirrored in an HTTP header.
type ParamHeader = spec.ParamHeader

// ParamHeaders lists the x-mcp-header annotations of a tool definition's
// input schema, nested object properties included. It runs once per pinned
// version, when the snapshot is built, not per call. Keywords are matched
// exactly, as JSON Schema matches them: "X-MCP-Header" or "Properties" is
// another member, not an annotation (encoding/json, which matched them
// case-insensitively, bound headers the upstream's schema does not). A
// definition whose annotations are not of the right types has none.
func ParamHeaders(definition json.RawMessage) []ParamHeader {
	tree, err := strictjson.Parse(definition)
	if err != nil {
		return nil
	}
	def, ok := objectOrNull(tree)
	if !ok {
		return nil
	}
	var out []ParamHeader
	var walk func(schema any, prefix []string) bool
	walk = func(schema any, prefix []string) bool {
		obj, ok := objectOrNull(schema)
		if !ok {
			return false
		}
		props, ok := objectOrNull(obj["properties"])
		if !ok {
			return false
		}
		for name, p := range props {
			path := append(append([]string(nil), prefix...), name)
			prop, ok := objectOrNull(p)
			if !ok {
				return false
			}
			switch h := prop["x-mcp-header"].(type) {
			case string:
				if h != "" {
					out = append(out, ParamHeader{Path: path, Header: "Mcp-Param-" + h})
				}
			case nil:
			default:
				return false
			}
			if !walk(prop, path) {
				return false
			}
		}
		return true
	}
	if !walk(def["inputSchema"], nil) {
		return nil
	}
	return out
}

// objectOrNull returns v as an object; null (or absent) is an empty one,
// anything else is not one.
func objectOrNull(v any) (map[string]any, bool) {
	switch v := v.(type) {
	case map[string]any:
		return v, true
	case nil:
		return nil, true
	}
	return nil, false
}
