package catalog

import (
	"encoding/json"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// ParamHeader is a tool argument mirrored in an HTTP header.
type ParamHeader = spec.ParamHeader

// headerProp is what x-mcp-header processing needs of a schema property.
type headerProp struct {
	Header     string                `json:"x-mcp-header"`
	Properties map[string]headerProp `json:"properties"`
}

// ParamHeaders lists the x-mcp-header annotations of a tool definition's
// input schema, nested object properties included. It runs once per pinned
// version, when the snapshot is built, not per call.
func ParamHeaders(definition json.RawMessage) []ParamHeader {
	var def struct {
		InputSchema headerProp `json:"inputSchema"`
	}
	if json.Unmarshal(definition, &def) != nil {
		return nil
	}
	var out []ParamHeader
	var walk func(props map[string]headerProp, prefix []string)
	walk = func(props map[string]headerProp, prefix []string) {
		for name, p := range props {
			path := append(append([]string(nil), prefix...), name)
			if p.Header != "" {
				out = append(out, ParamHeader{Path: path, Header: "Mcp-Param-" + p.Header})
			}
			walk(p.Properties, path)
		}
	}
	walk(def.InputSchema.Properties, nil)
	return out
}
