package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// How an OpenAPI schema becomes a JSON Schema (2020-12) that the gateway
// validates arguments and responses against: local references inlined
// (a recursive schema cannot be, and is refused), OpenAPI 3.0's dialect
// (nullable, boolean exclusive bounds, example) rewritten, and the whole
// bounded, so that a document of references fanning out cannot blow up.

// maxNodes bounds the JSON values one document's schemas may expand to.
const maxNodes = 200_000

// maxDepth bounds how deep an operation nests once its references are
// inlined (in JSON values: an object's property is two deeper): checking
// a schema costs the square of its depth, so a chain of references a few
// hundred long took minutes of CPU at every sync.
const maxDepth = 128

// tree is a document as plain JSON values, for resolving references.
type tree struct {
	root  any
	v30   bool // OpenAPI 3.0: its schema dialect is rewritten
	nodes int  // values produced so far, against maxNodes
	depth int  // of the value being inlined, against maxDepth
}

// jsonValue decodes b (numbers kept exact).
func jsonValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// depths measures how deep a document's values nest, each local
// reference followed (once: memoised), a reference met inside itself
// counted as not nesting further (recursion is refused where it is used).
type depths struct {
	root any
	memo map[string]int // reference → depth of its target; -1 while measured
}

func (d *depths) of(v any) int {
	deepest := 0
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok && strings.HasPrefix(ref, "#") {
			n, seen := d.memo[ref]
			switch {
			case !seen:
				d.memo[ref] = -1
				n = 0
				if target, err := (&tree{root: d.root}).pointer(ref); err == nil {
					n = d.of(target)
				}
				d.memo[ref] = n
			case n < 0:
				n = 0
			}
			deepest = n
		}
		for _, e := range x {
			deepest = max(deepest, d.of(e))
		}
	case []any:
		for _, e := range x {
			deepest = max(deepest, d.of(e))
		}
	default:
		return 1
	}
	return deepest + 1
}

// pointer resolves a local reference (#/a/b~1c).
func (t *tree) pointer(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#") {
		return nil, fmt.Errorf("reference %q is not local to the document (external references are not followed)", clip(ref))
	}
	cur := t.root
	p := strings.TrimPrefix(ref, "#")
	if p == "" {
		return cur, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("reference %q is not a JSON pointer", clip(ref))
	}
	for _, tok := range strings.Split(p[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q does not resolve", clip(ref))
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("reference %q does not resolve", clip(ref))
		}
	}
	return cur, nil
}

// inline returns v with every $ref replaced by what it points at; a
// reference met again inside itself is recursion, refused (what says
// where, for the error).
func (t *tree) inline(v any, stack []string, what string) (any, error) {
	if t.nodes++; t.nodes > maxNodes {
		return nil, fmt.Errorf("%s: the schemas expand to more than %d values", what, maxNodes)
	}
	if t.depth++; t.depth > maxDepth {
		return nil, fmt.Errorf("%s: the schemas nest deeper than %d levels", what, maxDepth)
	}
	defer func() { t.depth-- }()
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			for _, s := range stack {
				if s == ref {
					return nil, fmt.Errorf("%s: schema %s refers to itself (recursive schemas are not supported)", what, clip(ref))
				}
			}
			target, err := t.pointer(ref)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			resolved, err := t.inline(target, append(stack, ref), what)
			if err != nil {
				return nil, err
			}
			if len(x) == 1 {
				return resolved, nil
			}
			// 3.1: keywords beside $ref apply too: both must hold.
			rest := map[string]any{}
			for k, e := range x {
				if k != "$ref" {
					rest[k] = e
				}
			}
			sib, err := t.inline(rest, stack, what)
			if err != nil {
				return nil, err
			}
			return map[string]any{"allOf": []any{resolved, sib}}, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := t.inline(e, stack, what)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := t.inline(e, stack, what)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

// schemaKeys are the keywords whose values are schemas, maps of schemas
// or lists of schemas, where the 3.0 rewriting descends.
var (
	schemaKeys     = []string{"items", "not", "additionalProperties", "contains", "propertyNames", "if", "then", "else", "unevaluatedItems", "unevaluatedProperties"}
	schemaMapKeys  = []string{"properties", "patternProperties", "dependentSchemas", "$defs"}
	schemaListKeys = []string{"allOf", "anyOf", "oneOf", "prefixItems"}
)

// dialect rewrites an inlined OpenAPI 3.0 schema into JSON Schema 2020-12,
// and drops what only OpenAPI reads (discriminator, xml, externalDocs,
// example) in either version.
func (t *tree) dialect(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		switch k {
		case "discriminator", "xml", "externalDocs", "example":
			continue
		}
		if strings.HasPrefix(k, "x-") {
			continue
		}
		out[k] = e
	}
	for _, k := range schemaKeys {
		if e, ok := out[k]; ok {
			out[k] = t.dialect(e)
		}
	}
	for _, k := range schemaMapKeys {
		if mm, ok := out[k].(map[string]any); ok {
			n := make(map[string]any, len(mm))
			for name, e := range mm {
				n[name] = t.dialect(e)
			}
			out[k] = n
		}
	}
	for _, k := range schemaListKeys {
		if l, ok := out[k].([]any); ok {
			n := make([]any, len(l))
			for i, e := range l {
				n[i] = t.dialect(e)
			}
			out[k] = n
		}
	}
	if !t.v30 {
		return out
	}
	if out["nullable"] == true {
		switch ty := out["type"].(type) {
		case string:
			out["type"] = []any{ty, "null"}
		}
		if enum, ok := out["enum"].([]any); ok {
			out["enum"] = append(enum, nil)
		}
	}
	delete(out, "nullable")
	for _, b := range [][2]string{{"exclusiveMinimum", "minimum"}, {"exclusiveMaximum", "maximum"}} {
		switch out[b[0]] {
		case true:
			if bound, ok := out[b[1]]; ok {
				out[b[0]] = bound
				delete(out, b[1])
			} else {
				delete(out, b[0])
			}
		case false:
			delete(out, b[0])
		}
	}
	return out
}

// schemaOf is the JSON Schema of an OpenAPI schema as kin-openapi encodes
// it (references as $ref): inlined, in the 2020-12 dialect.
func (t *tree) schemaOf(raw []byte, what string) (map[string]any, error) {
	v, err := jsonValue(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: schema not encodable: %v", what, err)
	}
	v, err = t.inline(v, nil, what)
	if err != nil {
		return nil, err
	}
	switch s := t.dialect(v).(type) {
	case map[string]any:
		return s, nil
	case bool:
		if s {
			return map[string]any{}, nil
		}
		return map[string]any{"not": map[string]any{}}, nil
	default:
		return nil, fmt.Errorf("%s: a schema must be an object", what)
	}
}

// types is a schema's "type" as a list ("" entries never).
func types(s map[string]any) []string {
	switch ty := s["type"].(type) {
	case string:
		return []string{ty}
	case []any:
		var out []string
		for _, e := range ty {
			if str, ok := e.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

// scalar reports whether every type s allows is a string, number,
// integer, boolean (or null), and it allows at least one; a schema that
// names no type (only an enum, say) is scalar if its enum is.
func scalar(s map[string]any) bool {
	ts := types(s)
	if len(ts) == 0 {
		enum, ok := s["enum"].([]any)
		if !ok || len(enum) == 0 {
			return false
		}
		for _, e := range enum {
			switch e.(type) {
			case string, json.Number, bool, nil:
			default:
				return false
			}
		}
		return true
	}
	for _, ty := range ts {
		switch ty {
		case "string", "number", "integer", "boolean", "null":
		default:
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
