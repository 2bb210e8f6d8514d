package upstream

import (
	"context"
	"time"

	"github.com/ostiary/ostiary/internal/authn"
)

// Who an upstream request is for: the Caller a request carries in its
// context, from the authenticated principal or Ostiary itself.

// Caller is who an upstream request is for.
type Caller struct {
	User        string
	Roles       []string
	KeyID       string
	Environment string // the key's: picks the secret values injected, and the session
	Service     bool
	RequestID   string // correlation id, propagated as X-Request-ID and in the assertion
	Traceparent string // W3C trace context, propagated as is
	// Legacy: the client speaks a 2025 revision. Its session to the
	// upstream is negotiated in that era too, so that an upstream serving
	// both eras delivers what only its 2025 era has (log notifications,
	// sampling and elicitation on the session) to the client that expects
	// them. 2026-07-28 clients keep sessions negotiated at the latest.
	Legacy bool
	// Issuer, Token and TokenExpires: the caller's access token from an
	// identity provider (none for an API key), exchanged for each
	// token-exchange upstream's own; never sent anywhere itself.
	Issuer       string
	Token        authn.HeldToken
	TokenExpires time.Time
	system       bool // Ostiary itself (System)
}

// legacyVersion is what a legacy caller's upstream session asks for.
const legacyVersion = "2025-11-25"

// env is the caller's environment, the default if none is set.
func (c Caller) env() string {
	if c.Environment == "" {
		return authn.DefaultEnvironment
	}
	return c.Environment
}

// CallerOf returns the Caller for a principal.
func CallerOf(p *authn.Principal) Caller {
	return Caller{User: p.User, Roles: p.Roles, KeyID: p.KeyID, Environment: p.Environment, Service: p.Service, RequestID: p.RequestID, Traceparent: p.Traceparent, Legacy: p.Legacy,
		Issuer: p.Issuer, Token: p.Token, TokenExpires: p.TokenExpires}
}

// System is the caller Ostiary itself uses to list an upstream's tools.
var System = Caller{User: "ostiary", Roles: []string{}, Service: true, system: true}

type callerKey struct{}

// WithCaller attaches the caller of one upstream request to ctx.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}
