package adminapi

import (
	"encoding/hex"
	"net/http"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/vault"
)

// SetSecret is PUT /secrets/{name}: a new version. The value is accepted
// here and never returned by any endpoint.
type SetSecret struct {
	Value     string   `json:"value"`
	Upstreams []string `json:"upstreams"`
	// Environment whose value this is; empty: the default environment.
	Environment string `json:"environment,omitempty"`
}

// Rewrap is POST /vault/rewrap: wrap the vault's data key under a new
// master key (hex), optionally retiring every other wrapping.
type Rewrap struct {
	NewMasterKey string `json:"new_master_key"`
	RetireOthers bool   `json:"retire_others"`
}

// Rewrapped answers POST /vault/rewrap.
type Rewrapped struct {
	MasterKeys int `json:"master_keys"` // how many master keys now open the vault
}

// SearchTokenRequest is POST /audit/search-token: a suspected credential.
type SearchTokenRequest struct {
	Value string `json:"value"`
}

// SearchToken is the token that replaces that credential in audit records.
type SearchToken struct {
	Token string `json:"token"`
}

// SecretList is GET /secrets: names, versions, scopes, last access.
type SecretList struct {
	Secrets []vault.Secret `json:"secrets"`
}

func (a *API) setSecret(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in SetSecret
	if err := a.decode(w, r, p.Record(vault.EventSet, "secret:"+r.PathValue("name")), &in); err != nil {
		return 0, nil, err
	}
	s, err := a.Vault.Set(r.Context(), p, r.PathValue("name"), in.Environment, []byte(in.Value), in.Upstreams)
	return http.StatusOK, s, err
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	ss, err := a.Vault.List(r.Context(), p, r.URL.Query().Get("overdue") == "true")
	if ss == nil {
		ss = []vault.Secret{}
	}
	return http.StatusOK, SecretList{Secrets: ss}, err
}

func (a *API) rewrap(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in Rewrap
	rec := p.Record(vault.EventRewrap, "vault")
	if err := a.decode(w, r, rec, &in); err != nil {
		return 0, nil, err
	}
	key, _ := hex.DecodeString(in.NewMasterKey) // not hex: too short, refused below without echoing it
	n, err := a.Vault.Rewrap(r.Context(), p, key, in.RetireOthers)
	clear(key)
	return http.StatusOK, Rewrapped{MasterKeys: n}, err
}

func (a *API) searchToken(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in SearchTokenRequest
	if err := a.decode(w, r, p.Record(vault.EventToken, ""), &in); err != nil {
		return 0, nil, err
	}
	tok, err := a.Vault.SearchToken(r.Context(), p, in.Value)
	return http.StatusOK, SearchToken{Token: tok}, err
}
