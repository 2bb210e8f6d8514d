package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/policy"
)

// SetPolicy is PUT /policy: the policy document's text (YAML).
type SetPolicy struct {
	Source string `json:"source"`
	Reason string `json:"reason,omitempty"` // why (required when the change is a proposal)
}

// PolicySet answers PUT /policy: the new version and its tests' results.
type PolicySet struct {
	Version policy.Version      `json:"version"`
	Tests   []policy.TestResult `json:"tests"`
}

// PolicyHistory is GET /policy/history.
type PolicyHistory struct {
	Versions []policy.Version `json:"versions"`
}

// RollbackPolicy is POST /policy/rollback: put version Version's document
// back in force, as a new version.
type RollbackPolicy struct {
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// ExplainRequest is POST /policy/explain: what User would get calling Tool
// with Args.
type ExplainRequest struct {
	User string          `json:"user"`
	Tool string          `json:"tool"`
	Args json.RawMessage `json:"args"`
}

// ExplainAnswer answers POST /policy/explain.
type ExplainAnswer = govern.Explanation

// Explainer explains a decision without calling anything (govern.Pipeline).
type Explainer interface {
	Explain(ctx context.Context, asker *authn.Principal, user, tool string, args json.RawMessage) (govern.Explanation, error)
}

func (a *API) setPolicy(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in SetPolicy
	if err := a.decode(w, r, p.Record(policy.EventSet, "policy"), &in); err != nil {
		return 0, nil, err
	}
	if code, body, done, err := a.propose(r, p, change.Request{Kind: change.KindPolicy, Source: in.Source, Reason: in.Reason}); done {
		return code, body, err
	}
	v, results, err := a.Policy.Set(r.Context(), p, []byte(in.Source))
	if results == nil {
		results = []policy.TestResult{}
	}
	return http.StatusOK, PolicySet{Version: v, Tests: results}, err
}

func (a *API) rollbackPolicy(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in RollbackPolicy
	if err := a.decode(w, r, p.Record(policy.EventRollback, "policy"), &in); err != nil {
		return 0, nil, err
	}
	if code, body, done, err := a.propose(r, p, change.Request{Kind: change.KindPolicy, Version: in.Version, Rollback: true, Reason: in.Reason}); done {
		return code, body, err
	}
	v, results, err := a.Policy.Rollback(r.Context(), p, in.Version)
	if results == nil {
		results = []policy.TestResult{}
	}
	return http.StatusOK, PolicySet{Version: v, Tests: results}, err
}

func (a *API) showPolicy(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	version := 0
	if s := r.URL.Query().Get("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(policy.EventRead, "policy"), fault.New(fault.Invalid, "version must be a positive number"))
		}
		version = n
	}
	v, err := a.Policy.Show(r.Context(), p, version)
	return http.StatusOK, v, err
}

func (a *API) policyHistory(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	vs, err := a.Policy.History(r.Context(), p)
	return http.StatusOK, PolicyHistory{Versions: vs}, err
}

func (a *API) explainPolicy(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in ExplainRequest
	if err := a.decode(w, r, p.Record(policy.EventExplain, ""), &in); err != nil {
		return 0, nil, err
	}
	out, err := a.Explainer.Explain(r.Context(), p, in.User, in.Tool, in.Args)
	return http.StatusOK, out, err
}
