package adminapi

import (
	"encoding/hex"
	"net/http"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/vault"
)

// SetSecret is PUT /secrets/{name}: a new version. The value is accepted
// here and never returned by any endpoint.
type SetSecret struct {
	Value     string   `json:"value"`
	Upstreams []string `json:"upstreams"`
	// Environment whose value this is; empty: the default environment.
	Environment string `json:"environment,omitempty"`
	// RotateEvery is the version's rotation schedule ("90d", "12w",
	// "36h"; "none" clears it); omitted: the previous version's.
	RotateEvery string `json:"rotate_every,omitempty"`
}

// Compromised is POST /secrets/{name}/compromised: mark the secret's
// current value in an environment for immediate rotation, optionally
// engaging a kill switch on each upstream it is scoped to until a new
// version is set.
type Compromised struct {
	Environment string `json:"environment,omitempty"`
	Reason      string `json:"reason"`
	Kill        bool   `json:"kill"`
}

// Rewrap is POST /vault/rewrap: wrap the vault's data key under a new
// master key (hex), or under the server's HSM key (hsm), optionally
// retiring every other wrapping.
type Rewrap struct {
	NewMasterKey string `json:"new_master_key,omitempty"`
	HSM          bool   `json:"hsm,omitempty"`
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
	var opts vault.SetOptions
	if in.RotateEvery != "" {
		every, err := vault.ParsePeriod(in.RotateEvery)
		if err != nil {
			rec := p.Record(vault.EventSet, "secret:"+r.PathValue("name"))
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Invalid, "rotate_every: %v", err))
		}
		opts.RotateEvery = &every
	}
	s, err := a.Vault.SetWith(r.Context(), p, r.PathValue("name"), in.Environment, []byte(in.Value), in.Upstreams, opts)
	return http.StatusOK, s, err
}

func (a *API) compromised(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in Compromised
	if err := a.decode(w, r, p.Record(vault.EventCompromised, "secret:"+r.PathValue("name")), &in); err != nil {
		return 0, nil, err
	}
	s, err := a.Vault.Compromised(r.Context(), p, r.PathValue("name"), in.Environment, in.Reason, in.Kill)
	return http.StatusOK, s, err
}

func (a *API) rekey(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	st, err := a.Vault.Rekey(r.Context(), p)
	return http.StatusAccepted, st, err
}

func (a *API) rekeyStatus(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	rec := p.Record(vault.EventRekey, "vault")
	rec.Detail = map[string]any{"phase": "status"}
	if !p.Allows(authz.Admin, authz.All) {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the admin grant"))
	}
	st, err := audit.Read(r.Context(), a.Auditor, rec, func() (vault.RekeyStatus, error) { return a.Vault.RekeyStatus(r.Context()) })
	return http.StatusOK, st, err
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
	if in.HSM && in.NewMasterKey == "" {
		n, err := a.Vault.RewrapToHSM(r.Context(), p, in.RetireOthers)
		return http.StatusOK, Rewrapped{MasterKeys: n}, err
	}
	key, _ := hex.DecodeString(in.NewMasterKey) // not hex: too short, refused below without echoing it
	if in.HSM {
		clear(key)
		key = nil // both: refused below as malformed
	}
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
