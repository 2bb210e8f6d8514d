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
	path := b.Path
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
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(s))
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
			if strings.ContainsAny(s, "\r\n\x00") {
				return nil, fmt.Errorf("argument %q: a header value cannot hold a line break or NUL", clip(p.Name))
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
	if strings.ContainsAny(path, "{}") {
		return nil, errors.New("the path template is not filled")
	}
	u := *base
	u.RawQuery, u.Fragment, u.RawFragment = q.Encode(), "", ""
	raw := strings.TrimSuffix(base.EscapedPath(), "/") + path
	dec, err := url.PathUnescape(raw)
	if err != nil {
		return nil, errors.New("the path cannot be encoded")
	}
	u.Path, u.RawPath = dec, raw
	r.URL = &u
	return r, nil
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
