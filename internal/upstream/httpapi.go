package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream/openapi"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// HTTP APIs as tools (spec.HTTPAPI): the catalog lists the operations of
// the upstream's OpenAPI document (fetched at each sync from its URL, or
// as stored); a call builds the request from the binding pinned with the
// tool and the validated arguments, sends it through the same injector as
// an MCP request (static headers with their secrets, the identity
// assertion, the correlation ids, the response cap) on the upstream's
// guarded transport, with its credential from the vault; redirects are
// followed only on the same scheme and host. What comes back becomes the
// tool's result: JSON checked against the declared response schema as
// structured content, other text as it is, and an error status as a tool
// error with a bounded body.

// maxErrorBody bounds what an error answer's body shows.
const maxErrorBody = 2 << 10

// maxRedirects bounds the same-host redirects one call follows.
const maxRedirects = 5

// document returns u's OpenAPI document: stored, or fetched from its URL.
func (p *Pool) document(ctx context.Context, u spec.Upstream) ([]byte, error) {
	o := u.OpenAPI
	if o == nil {
		return nil, fmt.Errorf("upstream %s has no OpenAPI document", u.Name)
	}
	if o.Source == "" {
		return []byte(o.Document), nil
	}
	// The document is fetched as nobody: no headers, no credential, no
	// client certificate; verified against the upstream's CA, and not
	// verified only where the API itself is not (its loopback host).
	tlsOpts := spec.TLS{CA: u.TLS.CA}
	if su, bu := hostOf(o.Source), hostOf(u.URL); su != "" && su == bu {
		tlsOpts.InsecureSkipVerify = u.TLS.InsecureSkipVerify
	}
	src := spec.Upstream{Name: u.Name, URL: o.Source, AllowPrivate: u.AllowPrivate, AllowPlainHTTP: u.AllowPlainHTTP, TLS: tlsOpts, CreatedAt: u.CreatedAt}
	hc := &http.Client{Transport: p.transport(src, ""), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.Source, nil)
	if err != nil {
		return nil, errors.New("the document URL is invalid")
	}
	req.Header.Set("Accept", "application/json, application/yaml;q=0.9, */*;q=0.5")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its message quotes the URL, whose query may hold a token
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot fetch the OpenAPI document from %s: %w", o.DocumentSource(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot fetch the OpenAPI document: HTTP %d (redirects are not followed)", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, spec.MaxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("cannot fetch the OpenAPI document: %w", err)
	}
	if len(b) > spec.MaxDocument {
		return nil, fmt.Errorf("the OpenAPI document is larger than %d MiB", spec.MaxDocument>>20)
	}
	return b, nil
}

func hostOf(raw string) string {
	pu, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(pu.Host)
}

// listAPI lists an OpenAPI upstream's tools: its selected operations.
func (p *Pool) listAPI(ctx context.Context, u spec.Upstream) (spec.Listing, error) {
	doc, err := p.document(ctx, u)
	if err != nil {
		return spec.Listing{}, err
	}
	tools, err := openapi.Map(doc, u.OpenAPI.Operations)
	if err != nil {
		return spec.Listing{}, err
	}
	if len(tools) > maxListed {
		return spec.Listing{}, fmt.Errorf("upstream lists more than %d tools", maxListed)
	}
	return spec.Listing{Tools: tools}, nil
}

// admitAPI checks, when an OpenAPI upstream is added, that a stored
// document maps (a fetched one is checked at its sync).
func admitAPI(u spec.Upstream) error {
	if u.OpenAPI == nil || u.OpenAPI.Source != "" {
		return nil
	}
	_, err := openapi.Map([]byte(u.OpenAPI.Document), u.OpenAPI.Operations)
	return err
}

// callAPI calls one operation of an OpenAPI upstream as c.
func (p *Pool) callAPI(ctx context.Context, c Caller, u spec.Upstream, call ToolCall, relay *Relay) (*mcp.CallToolResult, error) {
	if call.Pinned == nil {
		return nil, &refusedError{fmt.Errorf("tool %s has no pinned definition", call.Name)}
	}
	b, ok := openapi.Bound(call.Pinned.Meta)
	if !ok {
		return nil, &refusedError{fmt.Errorf("tool %s has no HTTP binding in its pinned definition", call.Name)}
	}
	if call.continues() {
		return nil, errNotContinuable
	}
	base, err := url.Parse(u.URL)
	if err != nil {
		return nil, &refusedError{errors.New("the upstream's base URL is invalid")}
	}
	args := call.Args
	if args == nil {
		args = map[string]any{}
	}
	built, err := openapi.Build(b, base, args)
	if err != nil { // the pinned schema admitted what the binding cannot send: nothing is sent
		return nil, &refusedError{fmt.Errorf("tool %s: %w", call.Name, err)}
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	if relay == nil {
		relay = &Relay{}
	}
	ctx = withRelay(WithCaller(ctx, c), relay)
	var res *mcp.CallToolResult
	err = p.guard(ctx, u, c.User, "tool:"+call.Name, func() error {
		req, err := p.apiRequest(ctx, c, u, built, relay)
		if err != nil {
			return err
		}
		res, err = p.sendAPI(ctx, c, u, req, b, call.Pinned)
		return err
	})
	return res, err
}

// apiRequest is the HTTP request for built, with the upstream's credential.
func (p *Pool) apiRequest(ctx context.Context, c Caller, u spec.Upstream, built *openapi.Request, relay *Relay) (*http.Request, error) {
	var body io.Reader
	if built.Body != nil {
		body = bytes.NewReader(built.Body)
	}
	req, err := http.NewRequestWithContext(ctx, built.Method, built.URL.String(), body)
	if err != nil {
		return nil, &refusedError{errors.New("the request cannot be built")}
	}
	req.URL = built.URL
	for k, vs := range built.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json, text/plain;q=0.9, */*;q=0.5")
	if built.ContentType != "" {
		req.Header.Set("Content-Type", built.ContentType)
	}
	if a := u.OpenAPI.Auth; a != nil {
		known := vault.Known{}
		if err := p.authorize(ctx, c, u, a, req, known); err != nil {
			return nil, err
		}
		relay.know(known)
	}
	return req, nil
}

// sendAPI sends req and makes the tool result of the answer.
func (p *Pool) sendAPI(ctx context.Context, c Caller, u spec.Upstream, req *http.Request, b *openapi.Binding, pinned *mcp.Tool) (*mcp.CallToolResult, error) {
	first := req.URL
	hc := &http.Client{Transport: &injector{base: p.transport(u, c.env()), pool: p, u: u, owner: c},
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if next.URL.Scheme != first.Scheme || !strings.EqualFold(next.URL.Host, first.Host) {
				return http.ErrUseLastResponse // never across hosts: the credential and assertion stay with the API
			}
			if len(via) >= maxRedirects {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its message quotes the URL, which may hold a query credential
			err = fmt.Errorf("%s %s: %w", req.Method, b.Path, ue.Err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return apiResult(resp, data, b, pinned), nil
}

// apiResult is the tool result of an HTTP answer.
func apiResult(resp *http.Response, data []byte, b *openapi.Binding, pinned *mcp.Tool) *mcp.CallToolResult {
	status := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	fail := func(msg string) *mcp.CallToolResult {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
	}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fail(fmt.Sprintf("the API answered %s, a redirect to another host or one too many, which is not followed", status))
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		return fail(status + bounded(data))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	isJSON := mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
	if b.Output != nil && pinned.OutputSchema != nil {
		if !isJSON || len(bytes.TrimSpace(data)) == 0 {
			return fail(fmt.Sprintf("the API answered %s without the JSON its document declares", status))
		}
		v, err := strictjson.Parse(data)
		if err != nil {
			return fail(fmt.Sprintf("the API answered %s with malformed JSON", status))
		}
		structured := v
		if b.Output.Wrapped {
			structured = map[string]any{"result": v}
		}
		schema, err := openapi.Schema(pinned.OutputSchema)
		if err == nil {
			err = schema.Validate(structured)
		}
		if err != nil {
			return fail(fmt.Sprintf("the API answered %s with JSON that does not match the response schema its document declares: %s", status, clipN(err.Error(), 300)))
		}
		text, _ := json.Marshal(structured)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}, StructuredContent: structured}
	}
	switch {
	case len(data) == 0:
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: status}}}
	case utf8.Valid(data) && (isJSON || strings.HasPrefix(mt, "text/") || mt == "" || strings.HasSuffix(mt, "+xml") || mt == "application/xml"):
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(data)}}}
	default:
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s: %d bytes of %s", status, len(data), clipN(mt, 100))}}}
	}
}

// bounded is an error answer's body as shown: text, cut.
func bounded(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	if !utf8.Valid(data) {
		return fmt.Sprintf(" (%d bytes)", len(data))
	}
	return ": " + clipN(string(data), maxErrorBody)
}

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
