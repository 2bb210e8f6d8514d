package upstream

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/upstream/openapi"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

const echoDoc = `{"openapi":"3.0.3","info":{"title":"echo","version":"1"},"paths":{
"/echo":{"get":{"operationId":"echo","parameters":[{"name":"q","in":"query","schema":{"type":"string"}}],
  "responses":{"200":{"description":"what was received","content":{"text/plain":{"schema":{"type":"string"}}}}}}},
"/moved":{"get":{"operationId":"moved","responses":{"200":{"description":"after a redirect"}}}},
"/big":{"get":{"operationId":"big","responses":{"200":{"description":"a flood"}}}},
"/slow":{"get":{"operationId":"slow","responses":{"200":{"description":"never"}}}}}}`

// echoAPI answers what credential it received, in clear: a careless API.
func echoAPI(t *testing.T) *httptest.Server {
	m := http.NewServeMux()
	m.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "authorization=%s api_key=%s query=%s identity=%t", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"), r.URL.RawQuery,
			r.Header.Get(assertion.Header) != "")
	})
	m.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/echo?q=moved", http.StatusTemporaryRedirect)
	})
	m.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("x", 4096))) })
	m.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return srv
}

func apiPool(t *testing.T, secret string, maxResponse int64) *Pool {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: nopAuditor{}, Logger: slog.New(slog.DiscardHandler), Now: time.Now, Secrets: oneSecret{secret}, MaxResponse: maxResponse})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// callOp lists u and calls its operation op; it returns the result's text
// as the client would get it (redacted by the relay) and in clear.
func callOp(t *testing.T, p *Pool, u spec.Upstream, op string, args map[string]any) (string, string, error) {
	t.Helper()
	l, err := p.List(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range l.Tools {
		if tool.Name != op {
			continue
		}
		relay := &Relay{}
		res, err := p.Call(context.Background(), Caller{User: "alice", RequestID: "req-1"}, u, ToolCall{Name: op, Args: args, Pinned: tool}, relay)
		if err != nil {
			return "", "", err
		}
		text := res.Content[0].(*mcp.TextContent).Text
		return string(relay.Redact([]byte(text))), text, nil
	}
	t.Fatalf("no operation %s", op)
	return "", "", nil
}

// Each kind of credential reaches the API from the vault, and what the
// API echoes of it is redacted (basic credentials in their base64 form too).
func TestAPIAuth(t *testing.T) {
	const secret = "s3cret-value-4e1f9a7b"
	api := echoAPI(t)
	p := apiPool(t, secret, 0)
	basic := base64.StdEncoding.EncodeToString([]byte("svc:" + secret))
	for _, c := range []struct {
		auth spec.HTTPAuth
		want string
	}{
		{spec.HTTPAuth{Type: spec.AuthBearer, Secret: "k"}, "authorization=Bearer " + secret},
		{spec.HTTPAuth{Type: spec.AuthBasic, User: "svc", Secret: "k"}, "authorization=Basic " + basic},
		{spec.HTTPAuth{Type: spec.AuthHeader, Name: "X-Api-Key", Secret: "k"}, "api_key=" + secret},
		{spec.HTTPAuth{Type: spec.AuthQuery, Name: "api_key", Secret: "k"}, "query=api_key=" + secret + "&q=1"},
	} {
		u := spec.Upstream{Name: "echo-" + c.auth.Type, Kind: spec.HTTPAPI, URL: api.URL, AllowPrivate: true,
			OpenAPI: &spec.OpenAPI{Document: echoDoc, Auth: &c.auth}}
		if err := u.Validate(); err != nil {
			t.Fatalf("%s: %v", c.auth.Type, err)
		}
		shown, clear, err := callOp(t, p, u, "echo", map[string]any{"q": "1"})
		if err != nil {
			t.Fatalf("%s: %v", c.auth.Type, err)
		}
		if !strings.Contains(clear, c.want) || !strings.Contains(clear, "identity=true") {
			t.Errorf("%s: the API received %q", c.auth.Type, clear)
		}
		if strings.Contains(shown, secret) || strings.Contains(shown, basic) || !strings.Contains(shown, "REDACTED") {
			t.Errorf("%s: the client would see %q", c.auth.Type, shown)
		}
	}
}

// OAuth 2.0 client credentials: the client secret goes to the token
// endpoint only, the token to the API, once per its life; an echoed token
// is redacted.
func TestAPIOAuth2ClientCredentials(t *testing.T) {
	const secret = "client-secret-9b2c61d0e4"
	var mu sync.Mutex
	issued := 0
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, sec, ok := r.BasicAuth()
		r.ParseForm()
		if !ok || id != "gw" || sec != secret || r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("scope") != "pets.read pets.write" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		issued++
		n := issued
		mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("access-token-%d-7f3e9c", n), "token_type": "Bearer", "expires_in": 3600})
	}))
	defer tokens.Close()
	api := echoAPI(t)
	p := apiPool(t, secret, 0)
	u := spec.Upstream{Name: "oauth", Kind: spec.HTTPAPI, URL: api.URL, AllowPrivate: true, OpenAPI: &spec.OpenAPI{Document: echoDoc,
		Auth: &spec.HTTPAuth{Type: spec.AuthOAuth2, ClientID: "gw", Secret: "k", TokenURL: tokens.URL + "/token", Scopes: []string{"pets.read", "pets.write"}}}}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		shown, clear, err := callOp(t, p, u, "echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(clear, "authorization=Bearer access-token-1-7f3e9c") || strings.Contains(clear, secret) {
			t.Errorf("the API received %q", clear)
		}
		if strings.Contains(shown, "access-token-1") {
			t.Errorf("the client would see the token: %q", shown)
		}
	}
	if issued != 1 {
		t.Errorf("%d tokens issued for 3 calls", issued)
	}
}

// Same-host redirects are followed with the credential; a response over
// the cap and an API that never answers fail the call.
func TestAPIRedirectCapTimeout(t *testing.T) {
	api := echoAPI(t)
	p := apiPool(t, "tok-1234567890abcdef", 1024)
	u := spec.Upstream{Name: "echo", Kind: spec.HTTPAPI, URL: api.URL, AllowPrivate: true,
		OpenAPI: &spec.OpenAPI{Document: echoDoc, Auth: &spec.HTTPAuth{Type: spec.AuthBearer, Secret: "k"}}}
	_, clear, err := callOp(t, p, u, "moved", nil)
	if err != nil || !strings.Contains(clear, "query=q=moved") || !strings.Contains(clear, "Bearer tok-") {
		t.Errorf("same-host redirect: %q %v", clear, err)
	}
	if _, _, err := callOp(t, p, u, "big", nil); err == nil || !strings.Contains(err.Error(), "response limit") {
		t.Errorf("flood: %v", err)
	}
	l, _ := p.List(context.Background(), u)
	var slow *mcp.Tool
	for _, tool := range l.Tools {
		if tool.Name == "slow" {
			slow = tool
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Call(ctx, Caller{User: "alice"}, u, ToolCall{Name: "slow", Pinned: slow}, nil); err == nil {
		t.Error("a call that never got an answer succeeded")
	}
}

// The base URL, the document's URL and the token URL are held to the
// address rules; an API at a private address needs --allow-private, and
// the guard holds when dialling whatever the name.
func TestAPIAddressRules(t *testing.T) {
	doc := &spec.OpenAPI{Document: echoDoc}
	for _, u := range []spec.Upstream{
		{Name: "a", Kind: spec.HTTPAPI, URL: "http://10.0.0.8/api", OpenAPI: doc},
		{Name: "b", Kind: spec.HTTPAPI, URL: "https://api.example/v1", OpenAPI: &spec.OpenAPI{Source: "http://169.254.169.254/openapi.json"}},
		{Name: "c", Kind: spec.HTTPAPI, URL: "https://api.example/v1", OpenAPI: &spec.OpenAPI{Document: echoDoc,
			Auth: &spec.HTTPAuth{Type: spec.AuthOAuth2, ClientID: "gw", Secret: "k", TokenURL: "http://192.168.1.1/token"}}},
		{Name: "d", Kind: spec.HTTPAPI, URL: "https://api.example/v1?api_key=x", OpenAPI: doc},
		{Name: "e", Kind: spec.HTTPAPI, URL: "https://api.example/v1", OpenAPI: &spec.OpenAPI{Document: echoDoc, Auth: &spec.HTTPAuth{Type: spec.AuthBearer, Secret: "Bearer abc"}}},
		{Name: "f", Kind: spec.HTTPAPI, URL: "https://api.example/v1", OpenAPI: &spec.OpenAPI{Document: echoDoc, Auth: &spec.HTTPAuth{Type: spec.AuthHeader, Name: "Host", Secret: "k"}}},
	} {
		if err := u.Validate(); err == nil {
			t.Errorf("%s (%s) was accepted", u.Name, u.URL)
		}
	}
	api := echoAPI(t)
	p := apiPool(t, "x", 0)
	u := spec.Upstream{Name: "loop", Kind: spec.HTTPAPI, URL: api.URL, OpenAPI: doc} // loopback, not allowed
	if _, err := p.List(context.Background(), u); err != nil {
		t.Fatal(err) // the stored document needs no connection
	}
	l, _ := p.List(context.Background(), u)
	_, err := p.Call(context.Background(), Caller{User: "alice"}, u, ToolCall{Name: "echo", Pinned: l.Tools[0]}, nil)
	if _, refused := spec.RefusedAddress(err); !refused {
		t.Errorf("a call to loopback without allow_private: %v", err)
	}
}

// The document is fetched without the API's headers or credential, and a
// redirect at its URL is not followed.
func TestAPIDocumentFetch(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	docs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if r.URL.Path == "/moved.json" {
			http.Redirect(w, r, "/doc.json", http.StatusFound)
			return
		}
		w.Write([]byte(echoDoc))
	}))
	defer docs.Close()
	p := apiPool(t, "tok-abcdef0123456789", 0)
	u := spec.Upstream{Name: "echo", Kind: spec.HTTPAPI, URL: "http://127.0.0.1:1/api", AllowPrivate: true, Headers: map[string]string{"X-Tenant": "acme"},
		OpenAPI: &spec.OpenAPI{Source: docs.URL + "/doc.json", Auth: &spec.HTTPAuth{Type: spec.AuthBearer, Secret: "k"}}}
	l, err := p.List(context.Background(), u)
	if err != nil || len(l.Tools) != 4 {
		t.Fatalf("%d tools, %v", len(l.Tools), err)
	}
	if h := seen[0]; h.Get("Authorization") != "" || h.Get("X-Tenant") != "" || h.Get(assertion.Header) != "" {
		t.Errorf("the document fetch carried %v", h)
	}
	u.OpenAPI.Source = docs.URL + "/moved.json"
	if _, err := p.List(context.Background(), u); err == nil || !strings.Contains(err.Error(), "HTTP 302") {
		t.Errorf("a redirected document: %v", err)
	}
	if len(seen) != 2 {
		t.Errorf("the redirect was followed: %d fetches", len(seen))
	}
}

// An error answer shows its status and at most 2 KiB of its body.
func TestAPIErrorBounded(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{}}
	res := apiResult(resp, []byte(strings.Repeat("e", 10000)), &openapi.Binding{}, &mcp.Tool{})
	text := res.Content[0].(*mcp.TextContent).Text
	if !res.IsError || !strings.HasPrefix(text, "HTTP 500 Internal Server Error: eee") || len(text) > maxErrorBody+100 {
		t.Errorf("%d bytes: %.80s", len(text), text)
	}
}

// A document URL's query may hold a token (DisplayURL hides its values):
// a failed fetch's error, which the sync reports and records, does not
// quote it.
func TestAPIDocumentFetchErrorHidesQuery(t *testing.T) {
	const token = "doc-tok-0123456789abcdef"
	gone := httptest.NewServer(http.NotFoundHandler())
	addr := gone.URL
	gone.Close()
	p := apiPool(t, "unused-secret-value-1", 0)
	u := spec.Upstream{Name: "echo", Kind: spec.HTTPAPI, URL: "http://127.0.0.1:1/api", AllowPrivate: true,
		OpenAPI: &spec.OpenAPI{Source: addr + "/doc.json?access_token=" + token}}
	_, err := p.List(context.Background(), u)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "cannot fetch the OpenAPI document") {
		t.Errorf("fetch error: %v", err)
	}
}
