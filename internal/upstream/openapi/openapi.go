// Package openapi maps an OpenAPI 3.0 or 3.1 document to tools: each
// selected operation becomes one, whose input schema holds its path, query
// and header parameters and its request body, whose output schema is its
// JSON success response's, and whose binding (method, path template, where
// each argument goes, a digest of the operation as the document states it)
// is part of the definition the catalog pins. It also builds, from a
// binding and validated arguments, the HTTP request a call makes (request.go).
// It is pure: no network, no file, no clock; references outside the
// document are never followed.
package openapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// MetaKey is the _meta key of a tool's binding.
const MetaKey = spec.BindingMetaKey

// BodyArg is the argument holding the request body.
const BodyArg = "body"

// Binding is how a call of one operation becomes an HTTP request.
type Binding struct {
	Method string  `json:"method"`
	Path   string  `json:"path"` // the template, as in the document: /pet/{petId}
	Params []Param `json:"params,omitempty"`
	Body   *Body   `json:"body,omitempty"`
	// Output: the success status whose JSON schema is the tool's output
	// schema; Wrapped: a schema not of an object, held under "result".
	Output *Output `json:"output,omitempty"`
	// Digest is the SHA-256 of the operation as the document states it,
	// its references inlined: any change to it is a new definition.
	Digest string `json:"digest"`
}

// Param is one parameter.
type Param struct {
	Name     string `json:"name"`
	In       string `json:"in"` // path, query or header
	Required bool   `json:"required,omitempty"`
	Array    bool   `json:"array,omitempty"`
	Explode  bool   `json:"explode,omitempty"` // query arrays: name=a&name=b, else name=a,b
}

// Body is the request body.
type Body struct {
	ContentType string `json:"content_type"`
	Required    bool   `json:"required,omitempty"`
	// Encoding: json (the argument's JSON), text (a string sent as it is)
	// or base64 (a string decoded and sent as bytes).
	Encoding string `json:"encoding"`
}

// Output is the JSON response schema declared.
type Output struct {
	Status  string `json:"status"`
	Wrapped bool   `json:"wrapped,omitempty"`
}

// Bound returns the binding pinned in a tool's _meta (false: none).
func Bound(meta map[string]any) (*Binding, bool) {
	raw, ok := meta[MetaKey]
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, false
	}
	var out Binding
	if err := json.Unmarshal(b, &out); err != nil || out.Method == "" || out.Path == "" {
		return nil, false
	}
	return &out, true
}

// methods in the order operations are listed for a path.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodTrace}

// Load parses a document (JSON or YAML), 3.0 or 3.1, references resolved
// within it only.
func Load(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	loader.ReadFromURIFunc = func(*openapi3.Loader, *url.URL) ([]byte, error) {
		return nil, errors.New("references outside the document are not followed")
	}
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document does not parse: %s", clip(err.Error()))
	}
	switch doc.OpenAPIMajorMinor() {
	case "3.0", "3.1":
	default:
		return nil, fmt.Errorf("the document is OpenAPI %q: only 3.0 and 3.1 are supported", clip(doc.OpenAPI))
	}
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		return nil, errors.New("the OpenAPI document has no paths")
	}
	// Validating walks each component schema through every reference it
	// makes: a chain of references costs the square of its length (20,000
	// took minutes), so how deep the schemas nest is bounded first, in one
	// pass.
	whole, err := doc.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document cannot be encoded: %v", err)
	}
	root, err := jsonValue(whole)
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document cannot be encoded: %v", err)
	}
	if d := (&depths{root: root, memo: map[string]int{}}).of(root); d > maxDepth {
		return nil, fmt.Errorf("the OpenAPI document nests deeper than %d levels, its references followed", maxDepth)
	}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation(), openapi3.DisableSchemaDefaultsValidation(),
		openapi3.DisableSchemaPatternValidation(), openapi3.AllowExtraSiblingFields("description")); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %s", clip(err.Error()))
	}
	return doc, nil
}

// Map returns the tools of the selected operations of a document (each by
// operationId or "METHOD /path"; none selected: all). Any selected
// operation that cannot be mapped fails the whole document, with the
// operation and the reason.
func Map(data []byte, selected []string) ([]*mcp.Tool, error) {
	doc, err := Load(data)
	if err != nil {
		return nil, err
	}
	whole, err := doc.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document cannot be encoded: %v", err)
	}
	root, err := jsonValue(whole)
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document cannot be encoded: %v", err)
	}
	t := &tree{root: root, v30: doc.OpenAPIMajorMinor() == "3.0"}
	want := map[string]bool{}
	for _, s := range selected {
		want[selector(s)] = true
	}
	found := map[string]bool{}
	var tools []*mcp.Tool
	names := map[string]string{}
	paths := doc.Paths.InMatchingOrder()
	slices.Sort(paths)
	for _, path := range paths {
		item := doc.Paths.Value(path)
		for _, method := range methods {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			key := method + " " + path
			if len(want) > 0 && !want[selector(op.OperationID)] && !want[key] {
				continue
			}
			found[selector(op.OperationID)], found[key] = true, true
			tool, err := t.operation(path, method, item, op)
			if err != nil {
				return nil, fmt.Errorf("operation %s: %w", label(op, key), err)
			}
			if other, dup := names[tool.Name]; dup {
				return nil, fmt.Errorf("operation %s: its tool name %s is also %s's", label(op, key), tool.Name, other)
			}
			names[tool.Name] = label(op, key)
			tools = append(tools, tool)
		}
	}
	for _, s := range selected {
		if !found[selector(s)] {
			return nil, fmt.Errorf("operation %q is not in the document (give an operationId or \"METHOD /path\")", clip(s))
		}
	}
	if len(tools) == 0 {
		return nil, errors.New("the OpenAPI document has no operations")
	}
	return tools, nil
}

// selector normalises an operation selector: "get /pet" is "GET /pet".
func selector(s string) string {
	if m, p, ok := strings.Cut(s, " "); ok && slices.Contains(methods, strings.ToUpper(m)) && strings.HasPrefix(p, "/") {
		return strings.ToUpper(m) + " " + p
	}
	return s
}

func label(op *openapi3.Operation, key string) string {
	if op.OperationID != "" {
		return fmt.Sprintf("%q (%s)", clip(op.OperationID), key)
	}
	return key
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// toolName is the operation's tool name: its operationId, else the method
// and path ("get_pet_petId"), characters a tool name cannot hold as '_'.
func toolName(method, path string, op *openapi3.Operation) string {
	n := op.OperationID
	if n == "" {
		n = strings.ToLower(method) + "_" + strings.NewReplacer("{", "", "}", "").Replace(path)
	}
	n = strings.Trim(unsafeName.ReplaceAllString(n, "_"), "_.-")
	n = strings.ReplaceAll(n, "__", "_")
	if len(n) > 96 {
		n = n[:96]
	}
	return n
}

// operation maps one operation.
func (t *tree) operation(path, method string, item *openapi3.PathItem, op *openapi3.Operation) (*mcp.Tool, error) {
	b := &Binding{Method: method, Path: path}
	props, required := map[string]any{}, []string{}
	params, err := merged(item.Parameters, op.Parameters)
	if err != nil {
		return nil, err
	}
	for _, p := range params {
		prop, param, skip, err := t.parameter(p)
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		if _, dup := props[p.Name]; dup {
			return nil, fmt.Errorf("parameter %q appears in two places (%s and another): one argument cannot fill both", clip(p.Name), p.In)
		}
		props[p.Name] = prop
		if param.Required {
			required = append(required, p.Name)
		}
		b.Params = append(b.Params, param)
	}
	if err := checkTemplate(path, b.Params); err != nil {
		return nil, err
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		if _, dup := props[BodyArg]; dup {
			return nil, fmt.Errorf("a parameter is named %q, which is the request body's argument", BodyArg)
		}
		prop, body, err := t.body(op.RequestBody.Value)
		if err != nil {
			return nil, err
		}
		props[BodyArg], b.Body = prop, body
		if body.Required {
			required = append(required, BodyArg)
		}
	}
	slices.Sort(required)
	in := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		in["required"] = required
	}
	out, err := t.output(op, b)
	if err != nil {
		return nil, err
	}
	if b.Digest, err = t.digest(path, method); err != nil {
		return nil, err
	}
	if err := compiles(in); err != nil {
		return nil, fmt.Errorf("its input schema is not valid JSON Schema: %v", err)
	}
	tool := &mcp.Tool{Name: toolName(method, path, op), Title: strings.TrimSpace(op.Summary), Description: describe(op), InputSchema: in,
		Annotations: annotations(method)}
	if tool.Name == "" {
		return nil, errors.New("no tool name can be made of it")
	}
	if out != nil {
		if err := compiles(out); err != nil {
			return nil, fmt.Errorf("its response schema is not valid JSON Schema: %v", err)
		}
		tool.OutputSchema = out
	}
	meta, err := asMap(b)
	if err != nil {
		return nil, err
	}
	tool.Meta = mcp.Meta{MetaKey: meta}
	return tool, nil
}

// merged is the path item's parameters overridden by the operation's (by
// name and location).
func merged(item, op openapi3.Parameters) ([]*openapi3.Parameter, error) {
	var out []*openapi3.Parameter
	at := map[string]int{}
	for _, list := range []openapi3.Parameters{item, op} {
		for _, ref := range list {
			if ref == nil || ref.Value == nil {
				return nil, errors.New("a parameter does not resolve")
			}
			k := ref.Value.In + " " + ref.Value.Name
			if i, ok := at[k]; ok {
				out[i] = ref.Value
				continue
			}
			at[k] = len(out)
			out = append(out, ref.Value)
		}
	}
	return out, nil
}

func describe(op *openapi3.Operation) string {
	s, d := strings.TrimSpace(op.Summary), strings.TrimSpace(op.Description)
	switch {
	case d == "" || d == s:
		return s
	case s == "":
		return d
	default:
		return s + "\n\n" + d
	}
}

// annotations hint the tool's nature from its method; the catalog's
// labels, when set, decide.
func annotations(method string) *mcp.ToolAnnotations {
	f, tr := false, true
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, DestructiveHint: &f}
	case http.MethodDelete:
		return &mcp.ToolAnnotations{IdempotentHint: true, DestructiveHint: &tr}
	case http.MethodPut:
		return &mcp.ToolAnnotations{IdempotentHint: true, DestructiveHint: &f}
	default:
		return &mcp.ToolAnnotations{DestructiveHint: &f}
	}
}

// digest is the SHA-256 of the operation and its path's parameters as the
// document states them, references inlined, canonically encoded.
func (t *tree) digest(path, method string) (string, error) {
	item, err := t.pointer("#/paths/" + strings.ReplaceAll(strings.ReplaceAll(path, "~", "~0"), "/", "~1"))
	if err != nil {
		return "", err
	}
	m, _ := item.(map[string]any)
	stated := map[string]any{"path": path, "method": method, "parameters": m["parameters"], "operation": m[strings.ToLower(method)]}
	if _, ref := m["$ref"]; ref { // a path item by reference: its operations are where it points, all of it digested
		stated = map[string]any{"path": path, "method": method, "item": m}
	}
	v, err := t.inline(stated, nil, "digest")
	if err != nil {
		return "", err
	}
	c, err := jcs.Append(nil, v)
	if err != nil {
		return "", fmt.Errorf("the operation cannot be encoded: %v", err)
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

func asMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}
