package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// The credential of an OpenAPI upstream's requests, from the vault in the
// caller's environment: a bearer token, basic credentials, an API key in a
// header or the query, or an OAuth 2.0 access token got with the client
// credentials grant (cached per upstream and environment until shortly
// before it expires). Every value injected, and the access token, is
// known to the call's relay, so an API echoing it has it redacted.

// secret resolves one vault secret for c, recording the access.
func (p *Pool) secret(ctx context.Context, c Caller, u spec.Upstream, name string, known vault.Known) ([]byte, error) {
	if p.cfg.Secrets == nil {
		return nil, &refusedError{fmt.Errorf("upstream %s refers to a secret but no vault is open", u.Name)}
	}
	rec := audit.Record{Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID}
	v, err := p.cfg.Secrets.Resolve(ctx, name, u.Name, c.env(), rec)
	if err != nil {
		return nil, &refusedError{err}
	}
	known[name] = v
	return v.Value, nil
}

// authorize adds a's credential to req.
func (p *Pool) authorize(ctx context.Context, c Caller, u spec.Upstream, a *spec.HTTPAuth, req *http.Request, known vault.Known) error {
	if a.Type == spec.AuthOAuth2 {
		tok, err := p.accessToken(ctx, c, u, a, known)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
	v, err := p.secret(ctx, c, u, a.Secret, known)
	if err != nil {
		return err
	}
	if strings.ContainsAny(string(v), "\r\n\x00") {
		return &refusedError{fmt.Errorf("secret %s holds a line break or NUL, which no request may carry", a.Secret)}
	}
	switch a.Type {
	case spec.AuthBearer:
		req.Header.Set("Authorization", "Bearer "+string(v))
	case spec.AuthHeader:
		req.Header.Set(a.Name, string(v))
	case spec.AuthBasic:
		pair := a.User + ":" + string(v)
		known[a.Secret+" (basic)"] = vault.Injected{Value: []byte(pair), Version: known[a.Secret].Version}
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pair)))
	case spec.AuthQuery:
		q := req.URL.Query()
		q.Set(a.Name, string(v))
		req.URL.RawQuery = q.Encode()
	default:
		return &refusedError{fmt.Errorf("upstream %s: unknown auth type", u.Name)}
	}
	return nil
}

// oauthToken is a cached access token.
type oauthToken struct {
	value   string
	expires time.Time
	secret  vault.Injected // the client secret it was got with
}

// accessToken returns an access token for u in c's environment, from the
// cache or the token endpoint.
func (p *Pool) accessToken(ctx context.Context, c Caller, u spec.Upstream, a *spec.HTTPAuth, known vault.Known) (string, error) {
	secret, err := p.secret(ctx, c, u, a.Secret, known)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s/%d/%s", u.Name, u.CreatedAt.UnixNano(), c.env())
	if v, ok := p.tokens.Load(key); ok {
		t := v.(oauthToken)
		if p.cfg.Now().Before(t.expires) && string(t.secret.Value) == string(secret) {
			known[a.Secret+" (access token)"] = vault.Injected{Value: []byte(t.value), Version: t.secret.Version}
			return t.value, nil
		}
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(a.Scopes) > 0 {
		form.Set("scope", strings.Join(a.Scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &refusedError{errors.New("the token URL is invalid")}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(a.ClientID), url.QueryEscape(string(secret))) // RFC 6749 §2.3.1
	tu := spec.Upstream{Name: u.Name + "/token", URL: a.TokenURL, AllowPrivate: u.AllowPrivate, CreatedAt: u.CreatedAt}
	hc := &http.Client{Transport: p.transport(tu, ""), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("upstream %s: token endpoint: %w", u.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("upstream %s: token endpoint: %w", u.Name, err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" ||
		(tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer")) || strings.ContainsAny(tr.AccessToken, "\r\n\x00 ") {
		return "", &refusedError{fmt.Errorf("upstream %s: the token endpoint gave no bearer token (HTTP %d)", u.Name, resp.StatusCode)}
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if tr.ExpiresIn <= 0 || life > 24*time.Hour {
		life = time.Hour
	}
	known[a.Secret+" (access token)"] = vault.Injected{Value: []byte(tr.AccessToken), Version: known[a.Secret].Version}
	p.tokens.Store(key, oauthToken{value: tr.AccessToken, expires: p.cfg.Now().Add(life - min(30*time.Second, life/10)), secret: known[a.Secret]})
	return tr.AccessToken, nil
}
