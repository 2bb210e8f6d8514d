package openapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Request is the HTTP request one call makes, before Ostiary's own
// headers and the credential are added.
type Request struct {
	Method      string
	URL         *url.URL
	Header      http.Header
	Body        []byte
	ContentType string
}

// Build makes the request for a call of b with args (already validated
// against the pinned input schema; checked again here): path parameters
// escaped as one segment each ("." and ".." refused), query parameters
// encoded, header values without line breaks or NUL, the body encoded as
// the operation takes it. base is the upstream's base URL: the request
// never leaves its scheme, host and path prefix.
func Build(b *Binding, base *url.URL, args map[string]any) (*Request, error) {
	known := map[string]bool{}
	r := &Request{Method: b.Method, Header: http.Header{}}
	filled := map[string]string{}
	q := url.Values{}
	for _, p := range b.Params {
		known[p.Name] = true
		v, ok := args[p.Name]
		if !ok || v == nil {
			if p.Required {
				return nil, fmt.Errorf("argument %q is required", clip(p.Name))
			}
			continue
		}
		switch p.In {
		case "path":
			s, err := text(v)
			if err != nil {
				return nil, fmt.Errorf("argument %q: %w", clip(p.Name), err)
			}
			if s == "" || s == "." || s == ".." {
				return nil, fmt.Errorf("argument %q: a path parameter cannot be empty, '.' or '..'", clip(p.Name))
			}
			if dotted(s) {
				return nil, fmt.Errorf("argument %q: a path parameter cannot hold a '.' or '..' segment", clip(p.Name))
			}
			filled[p.Name] = url.PathEscape(s)
		case "query":
			vals, err := values(v, p.Array)
			if err != nil {
				return nil, fmt.Errorf("argument %q: %w", clip(p.Name), err)
			}
			if p.Array && !p.Explode {
				vals = []string{strings.Join(vals, ",")}
			}
			for _, s := range vals {
				q.Add(p.Name, s)
			}
		case "header":
			vals, err := values(v, p.Array)
			if err != nil {
				return nil, fmt.Errorf("argument %q: %w", clip(p.Name), err)
			}
			s := strings.Join(vals, ",")
			if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				// net/http would refuse to send it: refused here, before anything is sent or retried
				return nil, fmt.Errorf("argument %q: a header value cannot hold a line break, NUL or other control character", clip(p.Name))
			}
			r.Header.Set(p.Name, s)
		default:
			return nil, fmt.Errorf("parameter %q: unknown location", clip(p.Name))
		}
	}
	if b.Body != nil {
		known[BodyArg] = true
		if err := r.body(b.Body, args); err != nil {
			return nil, err
		}
	}
	for k := range args {
		if !known[k] {
			return nil, fmt.Errorf("argument %q is not a parameter of this operation", clip(k))
		}
	}
	path, err := fill(b.Path, filled)
	if err != nil {
		return nil, err
	}
	u := *base
	u.RawQuery, u.Fragment, u.RawFragment = q.Encode(), "", ""
	raw := strings.TrimSuffix(base.EscapedPath(), "/") + path
	dec, err := url.PathUnescape(raw)
	if err != nil {
		return nil, errors.New("the path cannot be encoded")
	}
	u.Path, u.RawPath = dec, raw
	if u.EscapedPath() != raw { // the URL would be sent re-encoded from its decoded path: an escaped '/' would become one
		return nil, errors.New("the path cannot be encoded")
	}
	r.URL = &u
	return r, nil
}

// fill is the escaped path of a template: its literal text escaped where
// a path cannot hold it as it is ('/' kept, a valid %XX kept), each
// variable replaced by its escaped value. The result has no '.' or '..'
// segment, literal or escaped: the request stays under the base path.
func fill(tmpl string, filled map[string]string) (string, error) {
	var sb strings.Builder
	rest := tmpl
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			i = len(rest)
		}
		if strings.IndexByte(rest[:i], '}') >= 0 {
			return "", errors.New("the path template is not filled")
		}
		sb.WriteString(escapeLiteral(rest[:i]))
		rest = rest[i:]
		if rest == "" {
			break
		}
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", errors.New("the path template is not filled")
		}
		v, ok := filled[rest[1:j]]
		if !ok {
			return "", errors.New("the path template is not filled")
		}
		sb.WriteString(v)
		rest = rest[j+1:]
	}
	path := sb.String()
	for _, seg := range strings.Split(path, "/") {
		if d, err := url.PathUnescape(seg); err != nil || d == "." || d == ".." {
			return "", errors.New("the path would have a '.' or '..' segment")
		}
	}
	return path, nil
}

// escapeLiteral escapes a template's literal text for a URL path: what an
// escaped path may hold as it is stays, a valid %XX stays, the rest
// (space, '?', '#', '\', non-ASCII, control characters…) is escaped.
func escapeLiteral(s string) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
			sb.WriteByte(c)
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			sb.WriteByte(c)
		default:
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		}
	}
	return sb.String()
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// dotted: a value some server would read as holding a '.' or '..'
// segment once it decodes the escaped '/' (or '\') in it.
func dotted(s string) bool {
	for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func (r *Request) body(b *Body, args map[string]any) error {
	v, ok := args[BodyArg]
	if !ok {
		if b.Required {
			return errors.New("argument \"body\" is required")
		}
		return nil
	}
	r.ContentType = b.ContentType
	switch b.Encoding {
	case "json":
		enc, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("argument \"body\": %v", err)
		}
		r.Body = enc
	case "text":
		s, ok := v.(string)
		if !ok {
			return errors.New("argument \"body\": want a string")
		}
		r.Body = []byte(s)
	case "base64":
		s, ok := v.(string)
		if !ok {
			return errors.New("argument \"body\": want a base64 string")
		}
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return errors.New("argument \"body\": not valid base64")
		}
		r.Body = dec
	default:
		return fmt.Errorf("request body: unknown encoding %q", clip(b.Encoding))
	}
	return nil
}

// text is a scalar argument as it goes in a URL or header.
func text(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case float64:
		return fmt.Sprint(x), nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	default:
		return "", errors.New("want a string, number or boolean")
	}
}

func values(v any, array bool) ([]string, error) {
	if !array {
		s, err := text(v)
		return []string{s}, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("want an array")
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, err := text(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
