// Package evidence assembles, from the audit chain and the approvals it
// describes, the structured records an auditor asks for: an
// approval_record tells one approval's whole story (request, votes, use,
// the call it let through, every audit record about it); an
// exception_record is one denial or failure with what Ostiary did about
// it. Every record points at the audit sequence numbers it comes from, so
// it can be checked against the chain (`ostiary audit verify`).
package evidence

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
)

// Kinds of evidence record.
const (
	KindApproval  = "approval_record"
	KindException = "exception_record"
)

// Auditor reads the audit log.
type Auditor interface {
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
}

// Approvals reads approval requests.
type Approvals interface {
	Approvals(ctx context.Context, q approval.Query) ([]approval.Approval, error)
}

// Query filters evidence records. User is the requester (approval_record)
// or the actor (exception_record); times bound when it happened.
type Query struct {
	User         string
	Since, Until time.Time
	Limit        int
}

// Ref is one audit record as evidence cites it.
type Ref struct {
	Seq     uint64        `json:"seq"`
	Time    time.Time     `json:"time"`
	Event   string        `json:"event"`
	Outcome audit.Outcome `json:"outcome"`
	Reason  string        `json:"reason,omitempty"`
	Actor   string        `json:"actor,omitempty"`
}

func ref(r audit.Record) Ref {
	return Ref{Seq: r.Seq, Time: r.Time, Event: r.Event, Outcome: r.Outcome, Reason: r.Reason, Actor: r.Actor}
}

// ApprovalRecord is one approval's story.
type ApprovalRecord struct {
	Kind     string            `json:"kind"`
	Approval approval.Approval `json:"approval"`
	// Outcome: pending, denied, expired, approved (not yet used), or
	// executed (used: the approved call ran; Execution says how it ended).
	Outcome   string     `json:"outcome"`
	Execution *Execution `json:"execution,omitempty"`
	Records   []Ref      `json:"records"` // every audit record about this approval, oldest first
}

// Execution is the call an approval let through.
type Execution struct {
	RequestID string        `json:"request_id"`
	Outcome   audit.Outcome `json:"outcome"` // of the tool-result record
	Reason    string        `json:"reason,omitempty"`
	LatencyUS any           `json:"latency_us,omitempty"`
	Records   []Ref         `json:"records"`
}

// ApprovalRecords returns the approval records matching q, newest first.
func ApprovalRecords(ctx context.Context, a Auditor, ap Approvals, q Query) ([]ApprovalRecord, error) {
	all, err := ap.Approvals(ctx, approval.Query{Requester: q.User, Since: q.Since, Until: q.Until, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	out := []ApprovalRecord{}
	for _, x := range all {
		ar := ApprovalRecord{Kind: KindApproval, Approval: x, Outcome: string(x.Status), Records: []Ref{}}
		recs, err := a.QueryAudit(ctx, audit.Query{Target: "approval:" + x.ID, Limit: audit.MaxLimit})
		if err != nil {
			return nil, err
		}
		slices.Reverse(recs) // oldest first
		var usedBy string
		for _, r := range recs {
			ar.Records = append(ar.Records, ref(r))
			if r.Event == approval.EventUsed {
				usedBy = r.RequestID
			}
		}
		if usedBy != "" {
			ar.Outcome = "executed"
			ar.Execution, err = execution(ctx, a, usedBy, x.Tool)
			if err != nil {
				return nil, err
			}
		}
		out = append(out, ar)
	}
	return out, nil
}

// execution finds how the call of request id on tool ended.
func execution(ctx context.Context, a Auditor, id, tool string) (*Execution, error) {
	recs, err := a.QueryAudit(ctx, audit.Query{RequestID: id, Limit: audit.MaxLimit})
	if err != nil {
		return nil, err
	}
	slices.Reverse(recs)
	e := &Execution{RequestID: id, Records: []Ref{}}
	for _, r := range recs {
		if r.Target != "tool:"+tool {
			continue
		}
		e.Records = append(e.Records, ref(r))
		if r.Event == "tool-result" {
			e.Outcome, e.Reason, e.LatencyUS = r.Outcome, r.Reason, r.Detail["latency_us"]
		}
	}
	return e, nil
}

// ExceptionRecord is one denial or failure, and what Ostiary did about it.
type ExceptionRecord struct {
	Kind          string        `json:"kind"`
	Seq           uint64        `json:"seq"`
	Time          time.Time     `json:"time"`
	Exception     string        `json:"exception"` // deny or failure
	Event         string        `json:"event"`
	Reason        string        `json:"reason"`
	Actor         string        `json:"actor,omitempty"`
	KeyID         string        `json:"key_id,omitempty"`
	Target        string        `json:"target,omitempty"`
	RequestID     string        `json:"request_id,omitempty"`
	PolicyReasons []string      `json:"policy_reasons,omitempty"`
	RiskScore     any           `json:"risk_score,omitempty"`
	PolicyVersion any           `json:"policy_version,omitempty"`
	Outcome       audit.Outcome `json:"outcome"`
	Mitigation    string        `json:"mitigation"`
}

// exceptional are the events whose denials and failures are exceptions.
var exceptional = []string{"tool-call", "tool-result", "rate-limited", "killswitch-block", approval.EventDecided, "webhook-delivery", "authn-failure"}

// ExceptionRecords returns the exception records matching q, newest first.
func ExceptionRecords(ctx context.Context, a Auditor, q Query) ([]ExceptionRecord, error) {
	var recs []audit.Record
	for _, ev := range exceptional {
		for _, o := range []audit.Outcome{audit.Denied, audit.Failed} {
			rs, err := a.QueryAudit(ctx, audit.Query{Event: ev, Outcome: o, Actor: q.User, Since: q.Since, Until: q.Until, Limit: q.Limit})
			if err != nil {
				return nil, err
			}
			recs = append(recs, rs...)
		}
	}
	slices.SortFunc(recs, func(x, y audit.Record) int {
		switch {
		case x.Seq > y.Seq:
			return -1
		case x.Seq < y.Seq:
			return 1
		}
		return 0
	})
	if len(recs) > q.Limit {
		recs = recs[:q.Limit]
	}
	out := make([]ExceptionRecord, 0, len(recs))
	for _, r := range recs {
		x := ExceptionRecord{Kind: KindException, Seq: r.Seq, Time: r.Time, Exception: "deny", Event: r.Event, Reason: r.Reason,
			Actor: r.Actor, KeyID: r.KeyID, Target: r.Target, RequestID: r.RequestID, Outcome: r.Outcome,
			RiskScore: r.Detail["risk_score"], PolicyVersion: r.Detail["policy_version"], Mitigation: mitigation(r)}
		if r.Outcome == audit.Failed {
			x.Exception = "failure"
		}
		if rs, ok := r.Detail["reasons"].([]any); ok {
			for _, s := range rs {
				if s, ok := s.(string); ok {
					x.PolicyReasons = append(x.PolicyReasons, s)
				}
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// mitigation says what Ostiary did about an exception, by its reason code.
func mitigation(r audit.Record) string {
	reason := r.Reason
	switch {
	case r.Event == "authn-failure":
		return "answered 401 like every other authentication failure; nothing was processed"
	case strings.HasPrefix(reason, "rate-limit-"):
		return "answered 429 with Retry-After; nothing reached the upstream"
	case r.Event == approval.EventDecided:
		return "the vote was refused and not counted; the approval request is unchanged"
	case r.Event == "webhook-delivery":
		return "the notification was not delivered after its retries; the approval itself is unaffected (approvers still see it in 'ostiary approvals list')"
	}
	switch reason {
	case "tool-unknown", "tool-not-permitted":
		return "refused before the upstream, answered exactly like an unknown tool"
	case "policy-deny":
		return "refused by policy before the upstream; the caller was told the reasons"
	case "approval-required":
		if id, ok := r.Detail["approval"].(string); ok {
			return "held for approval as " + id + "; nothing reached the upstream"
		}
		return "held for approval; nothing reached the upstream"
	case "arguments-invalid":
		return "refused: the arguments did not match the pinned input schema; nothing reached the upstream"
	case "header-mismatch":
		return "refused: Mcp-Param headers disagreed with the arguments; nothing reached the upstream"
	case "tool-schema-invalid":
		return "refused: the tool's pinned schema is invalid; an admin must activate a valid version"
	case "killswitch":
		return "stopped by a kill switch: refused, or cut while in flight and cancelled upstream"
	case "refused-by-upstream":
		return "the upstream answered with an error, which was reported to the caller"
	case "timeout":
		return "the upstream did not answer within the call's time limit; the call was cancelled upstream and the caller told"
	case "client-cancelled":
		return "the caller cancelled or went away; the call was cancelled upstream"
	case "gateway-stopping":
		return "cut by a graceful stop of the gateway; the call was cancelled upstream and the caller told"
	case "upstream-error":
		return "the upstream call failed and was reported to the caller; it counts towards the upstream's circuit breaker (read-only and idempotent tools are retried)"
	}
	return "refused or failed as recorded; nothing further happened"
}
