package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/lru"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// Token exchange (RFC 8693): an upstream declared with TokenExchange gets,
// on each caller's requests, a token the identity provider issued to it
// for that caller, in exchange for the caller's own access token, which
// never leaves Ostiary. A caller without one (an API key) is refused:
// Ostiary never lends its own identity to a user's call. Ostiary itself
// (System: listing the upstream's tools) uses its client's own token
// (client credentials) for the upstream's audience.

// Events of token exchange, audited once per token obtained (cached until
// shortly before it expires) and per refusal.
const (
	EventTokenExchange = "token-exchange"
)

// TokenEndpoints returns a trusted identity provider's token endpoint
// ("" names the only one).
type TokenEndpoints func(ctx context.Context, issuer string) (string, error)

const (
	maxExchanged  = 4096 // cached exchanged tokens
	maxTokenBytes = 16 << 10
)

type exchangedToken struct {
	value   string
	expires time.Time
	secret  string // the client secret it was got with: a rotated secret gets a new token
}

// exchangeCache holds tokens obtained, bounded; safe for concurrent use.
type exchangeCache struct {
	mu sync.Mutex
	m  *lru.Map[string, exchangedToken]
}

func (c *exchangeCache) get(k string) (exchangedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Get(k)
}

func (c *exchangeCache) put(k string, t exchangedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.Put(k, t)
}

// exchangeKey identifies a token obtained for c on u: by a digest of the
// caller's token (never the token), or Ostiary's own.
func exchangeKey(c Caller, u spec.Upstream, system bool) string {
	x := u.TokenExchange
	h := sha256.New()
	if system {
		fmt.Fprintf(h, "system\x00")
	} else {
		fmt.Fprintf(h, "caller\x00%s\x00%s\x00", c.Issuer, c.Token)
	}
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00%s\x00%s", u.Name, u.CreatedAt.UnixNano(), c.env(), x.Audience, x.ClientID, strings.Join(x.Scopes, " "))
	return hex.EncodeToString(h.Sum(nil))
}

// exchanged returns the bearer token for c's request to u, noting it (and
// the client secret) in known so that an echo of either is redacted.
func (p *Pool) exchanged(ctx context.Context, c Caller, u spec.Upstream, known vault.Known) (string, error) {
	x := u.TokenExchange
	system := c.system
	if !system && c.Token == "" {
		return "", &refusedError{fmt.Errorf("upstream %s takes the caller's identity-provider token (token exchange): sign in with the identity provider; an API key cannot call it", u.Name)}
	}
	if !system && !p.cfg.Now().Before(c.TokenExpires) {
		return "", &refusedError{fmt.Errorf("upstream %s: the caller's access token has expired", u.Name)}
	}
	if p.cfg.TokenEndpoint == nil {
		return "", &refusedError{fmt.Errorf("upstream %s exchanges tokens, but no identity provider is trusted (serve --oidc-issuer)", u.Name)}
	}
	secret, err := p.resolve(ctx, c, u, x.ClientSecret, known)
	if err != nil {
		return "", err
	}
	key := exchangeKey(c, u, system)
	if t, ok := p.exchangeCache().get(key); ok && p.cfg.Now().Before(t.expires) && t.secret == secret {
		known["token exchange ("+u.Name+")"] = vault.Injected{Value: []byte(t.value)}
		return t.value, nil
	}
	// The secret goes to Ostiary's own provider only: the configured one,
	// else the one trusted (several without a choice are refused there).
	// A caller from another provider is refused before anything is sent,
	// so a provider that Ostiary merely trusts for sign-in never receives
	// the client secret registered at another.
	issuer := x.Issuer
	if !system && issuer != "" && c.Issuer != issuer {
		return "", &refusedError{fmt.Errorf("upstream %s exchanges tokens of the identity provider %s only: sign in there", u.Name, issuer)}
	}
	rec := audit.Record{Event: EventTokenExchange, Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID,
		Target: "upstream:" + u.Name, Detail: map[string]any{"audience": x.Audience, "grant": "token-exchange"}}
	if system {
		rec.Detail["grant"] = "client-credentials"
	}
	tok, life, err := p.requestToken(ctx, issuer, c, u, secret, system)
	if err != nil {
		rec.Outcome, rec.Reason = audit.Failed, "refused"
		rec.Detail["error"] = err.Error()
		if _, werr := p.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); werr != nil {
			return "", werr
		}
		return "", &refusedError{err}
	}
	if _, err := p.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
		return "", err
	}
	expires := p.cfg.Now().Add(life - min(30*time.Second, life/10))
	if !system && c.TokenExpires.Before(expires) {
		expires = c.TokenExpires // never outlive the token it was exchanged for
	}
	p.exchangeCache().put(key, exchangedToken{value: tok, expires: expires, secret: secret})
	known["token exchange ("+u.Name+")"] = vault.Injected{Value: []byte(tok)}
	return tok, nil
}

func (p *Pool) exchangeCache() *exchangeCache {
	p.exchangeOnce.Do(func() { p.exchanges = &exchangeCache{m: lru.New[string, exchangedToken](maxExchanged)} })
	return p.exchanges
}

// requestToken asks the identity provider's token endpoint for u's token:
// the caller's exchanged, or (system) Ostiary's client's own. Errors are
// safe to show: they name the status and the provider's error code, never
// a token or the secret.
func (p *Pool) requestToken(ctx context.Context, issuer string, c Caller, u spec.Upstream, secret string, system bool) (string, time.Duration, error) {
	x := u.TokenExchange
	endpoint, err := p.cfg.TokenEndpoint(ctx, issuer)
	if err != nil {
		return "", 0, fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	form := url.Values{"audience": {x.Audience}, "resource": {x.Audience}}
	if system {
		form.Set("grant_type", "client_credentials")
	} else {
		form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
		form.Set("subject_token", string(c.Token))
		form.Set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")
		form.Set("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")
	}
	if len(x.Scopes) > 0 {
		form.Set("scope", strings.Join(x.Scopes, " "))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("upstream %s: the token endpoint is invalid", u.Name)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(x.ClientID), url.QueryEscape(secret)) // RFC 6749 §2.3.1
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if p.cfg.IdPTransport != nil {
		hc.Transport = p.cfg.IdPTransport
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", 0, fmt.Errorf("upstream %s: token endpoint: %w", u.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, fmt.Errorf("upstream %s: token endpoint: %w", u.Name, err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
	}
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" || len(tr.AccessToken) > maxTokenBytes ||
		(tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer")) || strings.ContainsFunc(tr.AccessToken, func(r rune) bool { return r <= 0x20 || r >= 0x7f }) {
		code := ""
		if oauthErrorRE(tr.Error) {
			code = ": " + tr.Error
		}
		return "", 0, fmt.Errorf("upstream %s: the identity provider gave no token for audience %s (HTTP %d%s)", u.Name, x.Audience, resp.StatusCode, code)
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if tr.ExpiresIn <= 0 || life > 24*time.Hour {
		life = 5 * time.Minute
	}
	return tr.AccessToken, life, nil
}

// oauthErrorRE accepts an OAuth error code (RFC 6749 §5.2: a short
// printable token) to show; anything else is not repeated.
func oauthErrorRE(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_') {
			return false
		}
	}
	return true
}
