// Package oidcop starts a real OpenID Provider for tests, on 127.0.0.1:
// github.com/zitadel/oidc's certified op package over an in-memory store of
// static users, groups and clients. Discovery, JWKS (with rotation),
// authorization code with PKCE, refresh and client credentials are the
// real protocol; the login page signs in whichever static user the test
// names, and RFC 8707 resource parameters become the access token's
// audience. Tests also get the provider's current signing key, to mint
// hostile tokens with it.
package oidcop

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is a static user.
type User struct {
	ID       string // the subject
	Username string // preferred_username
	Groups   []string
}

// Client is a static client. A client with a Secret is confidential (and
// may use client credentials, its own ID as subject, its Groups as groups);
// without one it is public and must use PKCE.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string // loopback http URIs match any port (RFC 8252)
	Groups       []string // groups claim of its client-credentials tokens
	// Exchange lists the audiences this (confidential) client may
	// exchange users' access tokens for (RFC 8693).
	Exchange []string
}

// Config lists the provider's users and clients.
type Config struct {
	Users         []User
	Clients       []Client
	TokenLifetime time.Duration // default 5m
}

// Provider is a running OpenID Provider.
type Provider struct {
	URL  string // the issuer
	st   *storage
	srv  *httptest.Server
	jwks atomic.Int64
}

// Start starts a provider on 127.0.0.1; it stops when the test ends.
func Start(t testing.TB, cfg Config) *Provider {
	t.Helper()
	p, err := Serve(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Serve starts a provider listening on addr (a loopback address).
func Serve(cfg Config, addr string) (*Provider, error) {
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = 5 * time.Minute
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Provider{URL: "http://" + ln.Addr().String(), st: newStorage(cfg)}
	if err := p.st.rotate(false); err != nil {
		ln.Close()
		return nil, err
	}
	provider, err := op.NewProvider(&op.Config{CryptoKey: sha256.Sum256([]byte(p.URL)), CodeMethodS256: true, AuthMethodPost: true,
		GrantTypeRefreshToken: true, SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeOfflineAccess, "mcp"}},
		p.st, op.StaticIssuer(p.URL), op.WithAllowInsecure())
	if err != nil {
		ln.Close()
		return nil, err
	}
	callback := op.AuthCallbackURL(provider)
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { p.login(w, r, callback) })
	mux.Handle("/", provider)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			p.jwks.Add(1)
		}
		// RFC 8707: the resource a client asks for becomes the audience.
		res := r.URL.Query()["resource"]
		if r.Method == http.MethodPost && r.ParseForm() == nil {
			res = append(res, r.PostForm["resource"]...)
		}
		if len(res) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), resourceKey{}, res))
		}
		mux.ServeHTTP(w, r)
	}))
	p.srv.Listener.Close()
	p.srv.Listener = ln
	p.srv.Start()
	return p, nil
}

// Close stops the provider.
func (p *Provider) Close() { p.srv.Close() }

type resourceKey struct{}

func resourcesOf(ctx context.Context) []string {
	r, _ := ctx.Value(resourceKey{}).([]string)
	return r
}

// JWKSFetches counts requests to the key set endpoint.
func (p *Provider) JWKSFetches() int { return int(p.jwks.Load()) }

// Rotate makes a new signing key current; with dropOld the previous keys
// leave the published key set.
func (p *Provider) Rotate(dropOld bool) error { return p.st.rotate(dropOld) }

// SigningKey is the current private key and its id, for minting tokens a
// test needs (expired, for another audience…) with the provider's own key.
func (p *Provider) SigningKey() (*rsa.PrivateKey, string) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	k := p.st.keys[len(p.st.keys)-1]
	return k.priv, k.id
}

// Mint signs claims with the current key (RS256, the current kid).
func (p *Provider) Mint(claims map[string]any) (string, error) {
	priv, kid := p.SigningKey()
	return MintWith(jose.SigningKey{Algorithm: jose.RS256, Key: priv}, kid, claims)
}

// MintWith signs claims with any key and algorithm.
func MintWith(key jose.SigningKey, kid string, claims map[string]any) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("at+jwt")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(key, opts)
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(mustJSON(claims))
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// ClientCredentials runs the client-credentials grant and returns the
// access token.
func (p *Provider) ClientCredentials(ctx context.Context, clientID, secret, resource string, scopes ...string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(scopes, " ")}}
	if resource != "" {
		form.Set("resource", resource)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := doJSON(req, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("client credentials: %s", out.Error)
	}
	return out.AccessToken, nil
}

// Browser signs username in at an authorization URL, as a browser would:
// it follows the provider's redirects to the login page, submits it, and
// returns the URL the provider finally sends the browser to (the client's
// redirect URI carrying code, state and iss), without visiting it.
func (p *Provider) Browser(ctx context.Context, authURL, username string) (*url.URL, error) {
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := authURL
	for range 10 {
		u, err := url.Parse(next)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(next, p.URL+"/") {
			return u, nil // left the provider: the client's redirect
		}
		if u.Path == "/login" {
			q := u.Query()
			q.Set("username", username)
			u.RawQuery = q.Encode()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return nil, fmt.Errorf("provider answered %s at %s without a redirect", resp.Status, u.Path)
		}
		next = loc.String()
	}
	return nil, errors.New("too many redirects")
}

func (p *Provider) login(w http.ResponseWriter, r *http.Request, callback func(context.Context, string) string) {
	id, username := r.URL.Query().Get("authRequestID"), r.URL.Query().Get("username")
	if username == "" {
		// A person at a browser picks a user (there are no passwords).
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Sign in</title><h1>Sign in as</h1>")
		for _, u := range p.st.cfg.Users {
			q := url.Values{"authRequestID": {id}, "username": {u.Username}}
			fmt.Fprintf(w, "<p><a href=\"/login?%s\">%s</a> (groups %s)</p>", html.EscapeString(q.Encode()), html.EscapeString(u.Username), html.EscapeString(strings.Join(u.Groups, ", ")))
		}
		return
	}
	if err := p.st.signIn(id, username); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// --- clients ---

type client struct {
	c Client
}

func (c *client) GetID() string          { return c.c.ID }
func (c *client) RedirectURIs() []string { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string {
	return nil
}
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.Secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	gs := []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	if c.c.Secret != "" {
		gs = append(gs, oidc.GrantTypeClientCredentials)
	}
	if len(c.c.Exchange) > 0 {
		gs = append(gs, oidc.GrantTypeTokenExchange)
	}
	return gs
}
func (c *client) LoginURL(id string) string           { return "/login?authRequestID=" + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(string) bool           { return true }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

func mustJSON(v any) []byte {
	b, err := jsonMarshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
