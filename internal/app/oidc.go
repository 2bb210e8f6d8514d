package app

import (
	"time"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/gateway"
)

// newTokenAuthenticator builds the verifier of the identity providers'
// access tokens; subjects are provisioned through the identity service,
// so that every just-in-time user is on record.
func newTokenAuthenticator(c config.OIDC, store authn.SubjectStore, prov authn.Provisioner, now func() time.Time) (*authn.TokenAuthenticator, error) {
	var issuers []authn.Issuer
	for _, u := range c.Issuers {
		issuers = append(issuers, authn.Issuer{URL: u, Scopes: c.Scopes, GroupsClaim: c.GroupsClaim, UsernameClaim: c.UsernameClaim})
	}
	mode := authn.ProvisionJIT
	if c.Users == "existing" {
		mode = authn.ProvisionExisting
	}
	return authn.NewTokenAuthenticator(authn.TokenConfig{Issuers: issuers, Audience: c.Audience, Skew: c.Skew, RefreshMin: c.RefreshMin,
		Provisioning: mode, Now: now, Store: store, Provisioner: prov})
}

// resource is what the protected resource metadata says of /mcp.
func (a *App) resource() gateway.Resource {
	if a.tokens == nil {
		return gateway.Resource{}
	}
	return gateway.Resource{URI: a.tokens.Audience(), AuthorizationServers: a.tokens.Issuers(), Scopes: a.tokens.Scopes()}
}
