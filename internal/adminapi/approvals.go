package adminapi

import (
	"net/http"
	"strconv"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/fault"
)

// ApprovalList is GET /approvals[?status=pending][&limit=N]: newest first,
// the requests the caller may see (their own, those on tools they may
// approve, all with read-audit).
type ApprovalList struct {
	Approvals []approval.Approval `json:"approvals"`
}

// ApprovalDecision is POST /approvals/{id}/approve or …/deny.
type ApprovalDecision struct {
	Reason string `json:"reason"`
}

func (a *API) listApprovals(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	q := r.URL.Query()
	status := approval.Status(q.Get("status"))
	switch status {
	case "", approval.Pending, approval.Approved, approval.Denied, approval.Expired, approval.Used:
	default:
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(approval.EventList, ""),
			fault.New(fault.Invalid, "status: want pending, approved, denied, expired or used"))
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(approval.EventList, ""), fault.New(fault.Invalid, "limit: 1 to 500"))
		}
		limit = n
	}
	as, err := a.Approvals.List(r.Context(), p, status, limit)
	if as == nil {
		as = []approval.Approval{}
	}
	return http.StatusOK, ApprovalList{Approvals: as}, err
}

func (a *API) showApproval(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	ap, err := a.Approvals.Show(r.Context(), p, r.PathValue("id"))
	return http.StatusOK, ap, err
}

func (a *API) decideApproval(approve bool) func(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	return func(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
		var in ApprovalDecision
		target := "approval:?"
		if approval.ValidID(r.PathValue("id")) {
			target = "approval:" + r.PathValue("id")
		}
		if err := a.decode(w, r, p.Record(approval.EventDecided, target), &in); err != nil {
			return 0, nil, err
		}
		ap, err := a.Approvals.Decide(r.Context(), p, r.PathValue("id"), approve, in.Reason)
		return http.StatusOK, ap, err
	}
}
