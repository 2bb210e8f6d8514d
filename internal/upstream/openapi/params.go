package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ignoredHeaders are header parameters OpenAPI says to ignore: the
// request's framing and credential are Ostiary's to set.
var ignoredHeaders = map[string]bool{"Accept": true, "Content-Type": true, "Authorization": true}

// refusedHeaders may not be filled from a tool's arguments: HTTP framing,
// routing, credentials and what Ostiary itself sends.
var refusedHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Cookie": true, "Proxy-Authorization": true, "Forwarded": true, "Ostiary-Identity": true,
	"Traceparent": true, "Tracestate": true, "X-Request-Id": true, "Keep-Alive": true, "Expect": true, "Accept-Encoding": true,
	// what proxies and frameworks read as the request's real method, path
	// or client: the method decides whether a call is read-only, held or
	// retried, and the path is the binding's
	"X-Http-Method-Override": true, "X-Http-Method": true, "X-Method-Override": true, "X-Original-Url": true, "X-Rewrite-Url": true,
	"X-Original-Method": true, "X-Real-Ip": true, "X-Client-Ip": true, "True-Client-Ip": true, "Client-Ip": true, "Via": true, "X-Host": true}

// parameter maps one parameter to its argument's schema; skip: one
// OpenAPI says to ignore.
func (t *tree) parameter(p *openapi3.Parameter) (map[string]any, Param, bool, error) {
	what := fmt.Sprintf("parameter %q (%s)", clip(p.Name), p.In)
	param := Param{Name: p.Name, In: p.In, Required: p.Required}
	if p.Name == "" || len(p.Name) > 128 || strings.ContainsFunc(p.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, param, false, fmt.Errorf("%s: invalid name", what)
	}
	switch p.In {
	case openapi3.ParameterInPath:
		if !p.Required {
			return nil, param, false, fmt.Errorf("%s: a path parameter must be required", what)
		}
	case openapi3.ParameterInQuery:
	case openapi3.ParameterInHeader:
		canon := http.CanonicalHeaderKey(p.Name)
		if ignoredHeaders[canon] {
			return nil, param, true, nil
		}
		if refusedHeaders[canon] || strings.HasPrefix(canon, "Mcp-") || strings.HasPrefix(canon, "X-Forwarded-") || strings.HasPrefix(canon, "Proxy-") ||
			strings.HasPrefix(canon, "Ostiary-") || strings.HasPrefix(canon, "X-Ostiary-") ||
			strings.ContainsFunc(p.Name, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
			}) {
			return nil, param, false, fmt.Errorf("%s: this header cannot be set from a tool's arguments", what)
		}
	case openapi3.ParameterInCookie:
		return nil, param, false, fmt.Errorf("%s: cookie parameters are not supported", what)
	default:
		return nil, param, false, fmt.Errorf("%s: unknown location", what)
	}
	if p.Schema == nil || len(p.Content) > 0 {
		return nil, param, false, fmt.Errorf("%s: only parameters with a schema are supported (not content)", what)
	}
	raw, err := json.Marshal(p.Schema)
	if err != nil {
		return nil, param, false, fmt.Errorf("%s: %v", what, err)
	}
	s, err := t.schemaOf(raw, what)
	if err != nil {
		return nil, param, false, err
	}
	style := p.Style
	switch {
	case scalar(s):
		if style != "" && style != "simple" && style != "form" {
			return nil, param, false, fmt.Errorf("%s: style %q is not supported", what, style)
		}
	case slices.Equal(types(s), []string{"array"}) && p.In != openapi3.ParameterInPath:
		items, _ := s["items"].(map[string]any)
		if items == nil || !scalar(items) {
			return nil, param, false, fmt.Errorf("%s: only arrays of strings, numbers or booleans are supported", what)
		}
		if style != "" && style != "form" && style != "simple" {
			return nil, param, false, fmt.Errorf("%s: style %q is not supported", what, style)
		}
		param.Array = true
		param.Explode = p.Explode == nil || *p.Explode
	default:
		return nil, param, false, fmt.Errorf("%s: only string, number, integer or boolean values (and arrays of them in a query or header) are supported", what)
	}
	if d := strings.TrimSpace(p.Description); d != "" && s["description"] == nil {
		s["description"] = d
	}
	return guard(s, p.In), param, false, nil
}

// guard adds to a parameter's schema what keeps a value from leaving its
// place: a path segment cannot be empty, "." or ".." (escaping keeps '/'
// in it); a header value cannot hold a line break or NUL. The pipeline
// refuses such arguments before anything is recorded or sent.
func guard(s map[string]any, in string) map[string]any {
	var g map[string]any
	switch in {
	case openapi3.ParameterInPath:
		g = map[string]any{"not": map[string]any{"enum": []any{"", ".", ".."}}}
	case openapi3.ParameterInHeader:
		line := map[string]any{"pattern": "^[^\\r\\n\\x00]*$"}
		if slices.Contains(types(s), "array") {
			g = map[string]any{"items": line}
		} else {
			g = line
		}
	default:
		return s
	}
	for k := range g {
		if _, taken := s[k]; taken {
			return map[string]any{"allOf": []any{s, g}}
		}
	}
	for k, v := range g {
		s[k] = v
	}
	return s
}

// checkTemplate checks that the path template's variables are exactly
// its path parameters.
func checkTemplate(path string, params []Param) error {
	vars := map[string]bool{}
	rest := path
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return errors.New("its path template has an unclosed '{'")
		}
		vars[rest[i+1:i+j]] = true
		rest = rest[i+j+1:]
	}
	if strings.Contains(rest, "}") {
		return errors.New("its path template has an unopened '}'")
	}
	for _, p := range params {
		if p.In == openapi3.ParameterInPath {
			if !vars[p.Name] {
				return fmt.Errorf("path parameter %q is not in the path template", clip(p.Name))
			}
			delete(vars, p.Name)
		}
	}
	for v := range vars {
		return fmt.Errorf("the path template's {%s} has no path parameter", clip(v))
	}
	sample := map[string]string{}
	for _, p := range params {
		sample[p.Name] = "x"
	}
	if _, err := fill(path, sample); err != nil {
		return fmt.Errorf("its path template: %v", err)
	}
	return nil
}

// body maps the request body: JSON when the operation takes it, else a
// text or binary (base64) string.
func (t *tree) body(rb *openapi3.RequestBody) (map[string]any, *Body, error) {
	types := make([]string, 0, len(rb.Content))
	for ct := range rb.Content {
		types = append(types, ct)
	}
	slices.Sort(types)
	pick := func(ok func(string) bool) string {
		for _, ct := range types {
			if mt, _, err := mime.ParseMediaType(ct); err == nil && ok(mt) {
				return ct
			}
		}
		return ""
	}
	body := &Body{Required: rb.Required}
	if ct := pick(jsonType); ct != "" {
		body.ContentType, body.Encoding = ct, "json"
		mt := rb.Content[ct]
		if mt == nil || mt.Schema == nil {
			return map[string]any{"description": "the request body (JSON)"}, body, nil
		}
		raw, err := json.Marshal(mt.Schema)
		if err != nil {
			return nil, nil, err
		}
		s, err := t.schemaOf(raw, "request body")
		if err != nil {
			return nil, nil, err
		}
		if d := strings.TrimSpace(rb.Description); d != "" && s["description"] == nil {
			s["description"] = d
		}
		return s, body, nil
	}
	if ct := pick(func(mt string) bool { return strings.HasPrefix(mt, "text/") }); ct != "" {
		body.ContentType, body.Encoding = ct, "text"
		return map[string]any{"type": "string", "description": "the request body (" + ct + ")"}, body, nil
	}
	if ct := pick(func(mt string) bool { return mt == "application/octet-stream" }); ct != "" {
		body.ContentType, body.Encoding = ct, "base64"
		return map[string]any{"type": "string", "contentEncoding": "base64", "description": "the request body, base64-encoded"}, body, nil
	}
	return nil, nil, fmt.Errorf("request body: media types %s are not supported (JSON, text/* and application/octet-stream are)", clip(strings.Join(types, ", ")))
}

// jsonType: application/json or a +json type.
func jsonType(mt string) bool {
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// output is the tool's output schema: the JSON schema of its first
// success response (by status) that declares one; nil when none does.
func (t *tree) output(op *openapi3.Operation, b *Binding) (map[string]any, error) {
	if op.Responses == nil {
		return nil, nil
	}
	var statuses []string
	for code := range op.Responses.Map() {
		if len(code) == 3 && code[0] == '2' {
			statuses = append(statuses, code)
		}
	}
	slices.SortFunc(statuses, func(a, b string) int { // 200 … 299, then 2XX
		return strings.Compare(strings.ReplaceAll(a, "X", "9"), strings.ReplaceAll(b, "X", "9"))
	})
	for _, code := range statuses {
		r := op.Responses.Value(code)
		if r == nil || r.Value == nil {
			continue
		}
		var ct string
		for c := range r.Value.Content {
			if mt, _, err := mime.ParseMediaType(c); err == nil && jsonType(mt) && (ct == "" || c < ct) {
				ct = c
			}
		}
		if ct == "" || r.Value.Content[ct].Schema == nil {
			continue
		}
		raw, err := json.Marshal(r.Value.Content[ct].Schema)
		if err != nil {
			return nil, err
		}
		s, err := t.schemaOf(raw, "response "+code)
		if err != nil {
			return nil, err
		}
		b.Output = &Output{Status: code}
		if slices.Equal(types(s), []string{"object"}) {
			return s, nil
		}
		b.Output.Wrapped = true
		return map[string]any{"type": "object", "properties": map[string]any{"result": s}, "required": []any{"result"}}, nil
	}
	return nil, nil
}

// compiles checks that s is a schema the gateway can validate against,
// with no reference leaving it.
func compiles(s map[string]any) error {
	if _, err := Schema(s); err != nil {
		return errors.New(clip(err.Error()))
	}
	return nil
}

// Schema compiles a tool's output schema for checking responses.
func Schema(s any) (*jsonschema.Schema, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "urn:ostiary:openapi-output"
	if err := c.AddResource(loc, v); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}
