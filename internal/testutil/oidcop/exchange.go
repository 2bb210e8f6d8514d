package oidcop

import (
	"context"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Token exchange (RFC 8693), the op package's own: a confidential client
// exchanges a user's access token issued here for one whose audience is
// one of its Exchange audiences; the subject stays the user.

// ValidateTokenExchangeRequest allows access tokens of known users, for
// audiences the client may ask for, as access tokens.
func (s *storage) ValidateTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) error {
	c, ok := s.clientByID(req.GetClientID())
	if !ok || len(c.Exchange) == 0 {
		return oidc.ErrUnauthorizedClient().WithDescription("client may not exchange tokens")
	}
	if req.GetExchangeSubjectTokenType() != oidc.AccessTokenType {
		return oidc.ErrInvalidRequest().WithDescription("only access tokens are exchanged")
	}
	if req.GetRequestedTokenType() == "" {
		req.SetRequestedTokenType(oidc.AccessTokenType)
	}
	if req.GetRequestedTokenType() != oidc.AccessTokenType {
		return oidc.ErrInvalidRequest().WithDescription("only access tokens are issued")
	}
	if _, ok := s.user(req.GetExchangeSubject()); !ok {
		return oidc.ErrInvalidGrant().WithDescription("unknown subject")
	}
	aud := req.GetAudience()
	if len(aud) == 0 {
		return oidc.ErrInvalidTarget().WithDescription("audience required")
	}
	for _, a := range aud {
		if !slices.Contains(c.Exchange, a) {
			return oidc.ErrInvalidTarget().WithDescription("audience not allowed for this client")
		}
	}
	s.mu.Lock()
	s.exchanges++
	s.mu.Unlock()
	return nil
}

func (s *storage) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest gives the exchanged token the
// user's name and groups.
func (s *storage) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) (map[string]any, error) {
	claims := map[string]any{}
	if u, ok := s.user(req.GetSubject()); ok {
		claims["preferred_username"] = u.Username
		claims["groups"] = slices.Clone(u.Groups)
	}
	return claims, nil
}

func (s *storage) SetUserinfoFromTokenExchangeRequest(_ context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	info.Subject = req.GetSubject()
	return nil
}

// Exchanges is how many token exchanges the provider granted.
func (p *Provider) Exchanges() int {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	return p.st.exchanges
}
