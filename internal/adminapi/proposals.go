package adminapi

import (
	"net/http"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/fault"
)

// Proposed answers a change that needs review (202): the proposal it
// became. Nothing changed yet.
type Proposed struct {
	Proposal change.Proposal `json:"proposal"`
}

// ProposalList is GET /proposals.
type ProposalList struct {
	Proposals []change.Proposal `json:"proposals"`
}

// ReviewRequest is POST /proposals/{id}/approve (Override: accept failing
// gates, with why) and /reject.
type ReviewRequest struct {
	Reason   string `json:"reason"`
	Override string `json:"override,omitempty"`
}

// WithdrawRequest is POST /proposals/{id}/withdraw.
type WithdrawRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ToolRollback is POST /tools/rollback: pin an earlier active version
// (Version 0: the one active before the current one).
type ToolRollback struct {
	Tool    string `json:"tool"`
	Version int    `json:"version,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// propose turns a change into a proposal when its kind needs review;
// ok false: it does not, apply it directly.
func (a *API) propose(r *http.Request, p *authn.Principal, req change.Request) (int, any, bool, error) {
	if !a.Changes.Required(req.Kind) {
		return 0, nil, false, nil
	}
	pr, err := a.Changes.Propose(r.Context(), p, req)
	return http.StatusAccepted, Proposed{Proposal: pr}, true, err
}

func (a *API) createProposal(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in change.Request
	if err := a.decode(w, r, p.Record(change.EventCreated, ""), &in); err != nil {
		return 0, nil, err
	}
	pr, err := a.Changes.Propose(r.Context(), p, in)
	return http.StatusCreated, pr, err
}

func (a *API) listProposals(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	v := r.URL.Query()
	for k := range v {
		if k != "state" && k != "object" {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(change.EventRead, ""), fault.New(fault.Invalid, "unknown query parameter %q (state, object)", clip(k, 40)))
		}
	}
	ps, err := a.Changes.List(r.Context(), p, change.Query{State: change.State(v.Get("state")), Object: v.Get("object")})
	return http.StatusOK, ProposalList{Proposals: ps}, err
}

func (a *API) showProposal(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	pr, err := a.Changes.Show(r.Context(), p, r.PathValue("id"))
	return http.StatusOK, pr, err
}

func (a *API) reviewProposal(approve bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
		ev := change.EventApproved
		if !approve {
			ev = change.EventRejected
		}
		var in ReviewRequest
		if err := a.decode(w, r, p.Record(ev, "proposal:"+clip(r.PathValue("id"), 64)), &in); err != nil {
			return 0, nil, err
		}
		pr, err := a.Changes.Review(r.Context(), p, r.PathValue("id"), change.Verdict{Approve: approve, Reason: in.Reason, Override: in.Override})
		return http.StatusOK, pr, err
	}
}

func (a *API) withdrawProposal(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in WithdrawRequest
	if err := a.decode(w, r, p.Record(change.EventWithdrawn, "proposal:"+clip(r.PathValue("id"), 64)), &in); err != nil {
		return 0, nil, err
	}
	pr, err := a.Changes.Withdraw(r.Context(), p, r.PathValue("id"), in.Reason)
	return http.StatusOK, pr, err
}

func (a *API) rollbackTool(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in ToolRollback
	rec := p.Record(catalog.EventToolActivated, "")
	if err := a.decode(w, r, rec, &in); err != nil {
		return 0, nil, err
	}
	if code, body, done, err := a.propose(r, p, change.Request{Kind: change.KindToolVersion, Tool: in.Tool, Version: in.Version, Rollback: true, Reason: in.Reason}); done {
		return code, body, err
	}
	st, err := a.Catalog.State(r.Context(), in.Tool)
	if err == nil {
		in.Version, err = change.RollbackTarget(st, in.Version)
	}
	if err != nil {
		rec.Target = "tool:" + clip(in.Tool, 200)
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	err = a.Catalog.Activate(r.Context(), p, in.Tool, in.Version)
	return http.StatusOK, in, err
}
