package spec

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// TokenExchange makes Ostiary exchange the caller's access token from
// the identity provider for one issued to this upstream (OAuth 2.0 Token
// Exchange, RFC 8693), sent as the upstream's bearer token. The caller's
// own token never reaches the upstream, and a caller without one (an API
// key) cannot call it: there is no token to exchange, and Ostiary never
// lends its own. HTTP upstreams only.
type TokenExchange struct {
	// Audience is the upstream's identifier at the identity provider: the
	// exchanged token's audience.
	Audience string `json:"audience"`
	// ClientID and ClientSecret are Ostiary's client at the identity
	// provider, which must be allowed to exchange tokens for Audience. The
	// secret is a ${secret:NAME} reference to the vault, never a value.
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Scopes       []string `json:"scopes,omitempty"`
	// Issuer is the identity provider where Ostiary's client is
	// registered: the only one its secret is sent to, and the only one
	// whose callers' tokens are exchanged. Empty means the one trusted
	// provider; with several trusted, an exchange without it is refused.
	Issuer string `json:"issuer,omitempty"`
}

var (
	secretOnlyRE = regexp.MustCompile(`^\$\{secret:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\}$`)
	scopeRE      = regexp.MustCompile(`^[\x21\x23-\x5b\x5d-\x7e]{1,128}$`) // RFC 6749 scope-token
)

func (x *TokenExchange) validate(u Upstream) error {
	if u.Kind != HTTP {
		return fmt.Errorf("--token-exchange needs an HTTP upstream (--url)")
	}
	if x.Audience == "" || len(x.Audience) > 512 || strings.ContainsFunc(x.Audience, notVisible) {
		return fmt.Errorf("--token-exchange: give the upstream's audience at the identity provider, 1 to 512 visible characters")
	}
	if x.ClientID == "" || len(x.ClientID) > 255 || strings.ContainsFunc(x.ClientID, notVisible) || strings.Contains(x.ClientID, ":") {
		return fmt.Errorf("--token-exchange-client-id: give Ostiary's client id at the identity provider, 1 to 255 visible characters, no ':'")
	}
	if !secretOnlyRE.MatchString(x.ClientSecret) {
		return fmt.Errorf("--token-exchange-client-secret: give the vault secret holding the client's secret as ${secret:NAME}, nothing else")
	}
	if x.Issuer != "" {
		u, err := url.Parse(x.Issuer)
		if err != nil || len(x.Issuer) > 512 || strings.ContainsFunc(x.Issuer, notVisible) || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
			return fmt.Errorf("--token-exchange-issuer: give the identity provider's issuer URL (https, or http on loopback), as --oidc-issuer names it")
		}
	}
	if len(x.Scopes) > 16 {
		return fmt.Errorf("--token-exchange-scope: at most 16 scopes")
	}
	for _, s := range x.Scopes {
		if !scopeRE.MatchString(s) {
			return fmt.Errorf("--token-exchange-scope %q: a scope is 1 to 128 visible characters without spaces, quotes or backslashes", clip(s))
		}
	}
	for k := range u.Headers {
		if strings.EqualFold(k, "Authorization") {
			return fmt.Errorf("an upstream with --token-exchange gets the exchanged token as its Authorization header: do not also set that header")
		}
	}
	return nil
}

func notVisible(r rune) bool { return r <= 0x20 || r == 0x7f }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
