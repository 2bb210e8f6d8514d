package gateway

import (
	"encoding/json"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/strictjson"
)

// Methods a client may call. Everything else is refused here, before the
// SDK sees it, nor is anything not modelled (resource subscriptions are
// not relayed yet). Prompts, resources and completion are governed by the
// same grants as tools.
var allowedMethods = map[string]bool{
	"initialize":                       true,
	"notifications/initialized":        true,
	"ping":                             true,
	"tools/list":                       true,
	"tools/call":                       true,
	"notifications/cancelled":          true,
	"notifications/progress":           true,
	"notifications/roots/list_changed": true,
	"logging/setLevel":                 true,
	"server/discover":                  true,
	"prompts/list":                     true,
	"prompts/get":                      true,
	"completion/complete":              true,
	"resources/list":                   true,
	"resources/templates/list":         true,
	"resources/read":                   true,
}

// message is what the front door learns from a request body.
type message struct {
	id       any // nil for notifications and unparsable bodies
	method   string
	toolName string         // for tools/call and prompts/get
	args     map[string]any // tools/call arguments, as parsed (numbers are json.Number)
	params   map[string]any // as parsed; nil if absent
	meta     map[string]any // params._meta as parsed; nil if absent
	modern   bool           // carries 2026-07-28 per-request _meta
}

// metaProtocolVersion is the per-request _meta key of protocol 2026-07-28.
const (
	metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"
	metaCapabilities    = "io.modelcontextprotocol/clientCapabilities"
)

var (
	topLevelKeys     = map[string]bool{"jsonrpc": true, "id": true, "method": true, "params": true, "result": true, "error": true}
	callParamKeys    = map[string]bool{"name": true, "arguments": true, "_meta": true, "task": true, "inputResponses": true, "requestState": true}
	promptParamKeys  = map[string]bool{"name": true, "arguments": true, "_meta": true, "inputResponses": true, "requestState": true}
	errBatch         = &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "batch requests are not supported: send one JSON-RPC message per request"}
	errNotAnObject   = &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "the body must be one JSON-RPC message object"}
	errMethodUnknown = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
)

func invalid(msg string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: msg}
}

// parseMessage checks a request body strictly: one JSON-RPC 2.0 message,
// valid UTF-8, no duplicate or unknown (case-variant) members, an allowed
// method, and for tools/call a tool name free of control characters.
func parseMessage(body []byte) (message, *jsonrpc.Error) {
	var m message
	tree, err := strictjson.Parse(body)
	if err != nil {
		return m, &jsonrpc.Error{Code: jsonrpc.CodeParseError, Message: err.Error()}
	}
	if _, isBatch := tree.([]any); isBatch {
		return m, errBatch
	}
	obj, ok := tree.(map[string]any)
	if !ok {
		return m, errNotAnObject
	}
	for k := range obj {
		if !topLevelKeys[k] {
			return m, invalid("unknown member " + quote(k))
		}
	}
	if id, ok := obj["id"]; ok {
		switch id.(type) {
		case string, json.Number:
			m.id = id
		default:
			return m, invalid("id must be a string or a number")
		}
	}
	if obj["jsonrpc"] != "2.0" {
		return m, invalid(`jsonrpc must be "2.0"`)
	}
	_, hasResult := obj["result"]
	_, hasError := obj["error"]
	method, hasMethod := obj["method"]
	if !hasMethod {
		// A response to a server-initiated request: exactly one of result
		// and error, for an id.
		if hasResult == hasError || obj["id"] == nil {
			return m, invalid("a response carries an id and exactly one of result and error")
		}
		return m, nil
	}
	if hasResult || hasError {
		return m, invalid("a request cannot carry result or error")
	}
	if m.method, ok = method.(string); !ok || hasControl(m.method) {
		return m, invalid("method must be a string without control characters")
	}
	var params map[string]any
	if p, ok := obj["params"]; ok {
		if params, ok = p.(map[string]any); !ok {
			return m, invalid("params must be an object")
		}
	}
	m.params = params
	if meta, ok := params["_meta"].(map[string]any); ok {
		m.meta = meta
		_, m.modern = meta[metaProtocolVersion]
	}
	if !allowedMethods[m.method] {
		return m, errMethodUnknown
	}
	if m.method == "resources/read" {
		if uri, ok := params["uri"].(string); !ok || uri == "" || hasControl(uri) {
			return m, invalid("resources/read needs a URI without control characters")
		}
	}
	keys := map[string]map[string]bool{"tools/call": callParamKeys, "prompts/get": promptParamKeys}[m.method]
	if keys != nil {
		for k := range params {
			if !keys[k] {
				return m, invalid("unknown " + m.method + " parameter " + quote(k))
			}
		}
		name, ok := params["name"].(string)
		if !ok || name == "" || hasControl(name) {
			return m, invalid(m.method + " needs a name without control characters")
		}
		m.toolName = name
		m.args, _ = params["arguments"].(map[string]any)
	}
	if err := unambiguous(obj, params, m.method); err != nil {
		return m, err
	}
	return m, nil
}

// unambiguous refuses objects with member names equal under case folding,
// anywhere in the message: invalid params under params, else an invalid
// request. A tool call's arguments are left to callTool, which refuses
// them as invalid arguments, on record.
func unambiguous(obj, params map[string]any, method string) *jsonrpc.Error {
	if args, ok := params["arguments"]; ok && method == "tools/call" {
		delete(params, "arguments")
		defer func() { params["arguments"] = args }()
	}
	c := strictjson.FindCaseCollision(obj, "$")
	switch {
	case c == nil:
		return nil
	case strings.HasPrefix(c.Path, `$."params"`):
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: c.Error()}
	default:
		return invalid(c.Error())
	}
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) >= 0
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b, _ := json.Marshal(s)
	return string(b)
}
