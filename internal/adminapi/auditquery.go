package adminapi

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/event"
	"github.com/ostiary/ostiary/internal/evidence"
	"github.com/ostiary/ostiary/internal/fault"
)

var eventRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// parseQuery reads the filters of GET /audit. Times are RFC 3339.
func parseQuery(v url.Values) (audit.Query, error) {
	for k := range v {
		switch k {
		case "user", "event", "outcome", "request_id", "target", "since", "until", "before_seq", "limit", "contains":
		default:
			return audit.Query{}, fault.New(fault.Invalid, "unknown query parameter %q", clip(k, 40))
		}
	}
	q := audit.Query{Actor: v.Get("user"), Event: v.Get("event"), Outcome: audit.Outcome(v.Get("outcome")),
		RequestID: v.Get("request_id"), Target: v.Get("target"), Contains: v.Get("contains"), Limit: audit.DefaultLimit}
	if len(q.Contains) > 256 {
		return q, fault.New(fault.Invalid, "contains: at most 256 bytes")
	}
	if q.Event != "" && !eventRE.MatchString(q.Event) {
		return q, fault.New(fault.Invalid, "event must be a kebab-case event type such as user-create")
	}
	if q.Event != "" {
		if err := event.Check(q.Event); err != nil { // a typo would silently find nothing
			return q, fault.New(fault.Invalid, "%s", err)
		}
	}
	switch q.Outcome {
	case "", audit.Success, audit.Denied, audit.Failed, audit.UnknownAfterCrash:
	default:
		return q, fault.New(fault.Invalid, "outcome must be success, denied, error or unknown-after-crash")
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, fault.New(fault.Invalid, "%s must be an RFC 3339 time such as 2026-11-22T10:00:00Z", name)
			}
			*dst = t
		}
	}
	if s := v.Get("before_seq"); s != "" {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil || n == 0 {
			return q, fault.New(fault.Invalid, "before_seq must be a positive integer")
		}
		q.BeforeSeq = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxLimit {
			return q, fault.New(fault.Invalid, "limit must be between 1 and %d", audit.MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// queryAudit serves GET /audit. It needs read-audit, and the query itself
// is recorded: who looked at the evidence is evidence too.
func (a *API) queryAudit(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	rec := p.Record(audit.EventAuditQuery, "")
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	rec.Detail = queryDetail(q)
	if !p.Allows(authz.ReadAudit, authz.All) {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the read-audit grant"))
	}
	lag := a.settle(r.Context())
	records, err := a.Audit.QueryAudit(r.Context(), q)
	if err != nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	if _, err := a.Auditor.Write(r.Context(), audit.Entry{Record: rec}); err != nil {
		return 0, nil, err
	}
	page := AuditPage{Records: make([]audit.View, len(records)), IndexLag: lag}
	for i := range records {
		page.Records[i] = records[i].View()
	}
	if len(records) == q.Limit {
		page.NextBeforeSeq = records[len(records)-1].Seq
	}
	return http.StatusOK, page, nil
}

func queryDetail(q audit.Query) map[string]any {
	d := map[string]any{"limit": q.Limit}
	for k, v := range map[string]string{"user": q.Actor, "event": q.Event, "outcome": string(q.Outcome),
		"request_id": q.RequestID, "target": q.Target, "contains": q.Contains} {
		if v != "" {
			d[k] = v
		}
	}
	if !q.Since.IsZero() {
		d["since"] = audit.FormatTime(q.Since)
	}
	if !q.Until.IsZero() {
		d["until"] = audit.FormatTime(q.Until)
	}
	if q.BeforeSeq > 0 {
		d["before_seq"] = q.BeforeSeq
	}
	return d
}

// EvidencePage answers GET /audit/approval_records and
// /audit/exception_records: one of the two lists, newest first.
type EvidencePage struct {
	Kind             string                     `json:"kind"`
	ApprovalRecords  []evidence.ApprovalRecord  `json:"approval_records,omitzero"`
	ExceptionRecords []evidence.ExceptionRecord `json:"exception_records,omitzero"`
	VersionLog       []evidence.VersionEntry    `json:"version_log,omitzero"`
	AccessReviews    []evidence.AccessReview    `json:"access_reviews,omitzero"`
	IndexLag         uint64                     `json:"index_lag,omitempty"` // as in AuditPage
}

// evidence serves the structured evidence records (read-audit); the query
// is recorded like any audit query.
func (a *API) evidence(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
		rec := p.Record(audit.EventAuditQuery, "")
		v := r.URL.Query()
		for k := range v {
			switch {
			case k == "user", k == "since", k == "until", k == "limit":
			case k == "object" && kind == evidence.KindVersionLog:
			default:
				return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Invalid, "unknown query parameter %q (evidence takes user, since, until, limit)", clip(k, 40)))
			}
		}
		object := v.Get("object")
		v.Del("object")
		q, err := parseQuery(v)
		if err != nil {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
		}
		if v.Get("limit") == "" {
			q.Limit = 50
		}
		if q.Limit > 500 {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Invalid, "limit: at most 500 evidence records"))
		}
		rec.Detail = queryDetail(q)
		rec.Detail["kind"] = kind
		if !p.Allows(authz.ReadAudit, authz.All) {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the read-audit grant"))
		}
		eq := evidence.Query{User: q.Actor, Since: q.Since, Until: q.Until, Limit: q.Limit}
		page := EvidencePage{Kind: kind, IndexLag: a.settle(r.Context())}
		switch kind {
		case evidence.KindApproval:
			page.ApprovalRecords, err = evidence.ApprovalRecords(r.Context(), a.Audit, a.Audit, eq)
		case evidence.KindVersionLog:
			if object != "" {
				rec.Detail["object"] = clip(object, 200)
			}
			page.VersionLog, err = evidence.VersionLog(r.Context(), a.Audit, evidence.VersionQuery{Query: eq, Object: object})
		case evidence.KindAccessReview:
			page.AccessReviews, err = evidence.AccessReviews(r.Context(), a.Audit, a.Reviews, eq)
		default:
			page.ExceptionRecords, err = evidence.ExceptionRecords(r.Context(), a.Audit, eq)
		}
		if err != nil {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
		}
		if _, err := a.Auditor.Write(r.Context(), audit.Entry{Record: rec}); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, page, nil
	}
}
