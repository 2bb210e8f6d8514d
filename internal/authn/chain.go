package authn

import (
	"context"
	"errors"
	"time"
)

// Chain authenticates a request by API key or, when identity providers are
// configured, by their JWT access tokens: the shape of the bearer token
// chooses (an API key starts ost_, a JWT is three dot-separated parts), so
// neither verifier ever sees the other's credentials.
type Chain struct {
	Keys   *Authenticator
	Tokens *TokenAuthenticator // nil: API keys only
}

// Authenticate verifies the Authorization header value of one request.
// Failures take at least failureFloor, whichever verifier refused.
func (c Chain) Authenticate(ctx context.Context, authorization string) (*Principal, error) {
	if c.Tokens != nil {
		if token, ok := BearerToken(authorization); ok && LooksLikeJWT(token) {
			start := time.Now()
			p, err := c.Tokens.AuthenticateToken(ctx, token)
			var f *Failure
			if errors.As(err, &f) {
				if wait := failureFloor - time.Since(start); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
					}
				}
			}
			return p, err
		}
	}
	return c.Keys.Authenticate(ctx, authorization)
}

// KeyValid reports whether the credential with this key id would still
// authenticate: an API key by its state, a token principal by its user's.
func (c Chain) KeyValid(ctx context.Context, id string) (bool, error) {
	if iss, sub, ok := ParseTokenKeyID(id); ok {
		if c.Tokens == nil {
			return false, nil
		}
		return c.Tokens.SubjectValid(ctx, iss, sub)
	}
	return c.Keys.KeyValid(ctx, id)
}

// Invalidate drops every cached credential, subject and mapping.
func (c Chain) Invalidate() {
	c.Keys.Invalidate()
	if c.Tokens != nil {
		c.Tokens.Invalidate()
	}
}
