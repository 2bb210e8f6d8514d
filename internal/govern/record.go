package govern

import (
	"context"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/tracing"
)

// ErrAudit is what a client sees when its request cannot be recorded:
// nothing was performed.
var ErrAudit = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the audit log is unavailable; the request was not performed"}

// ErrAuditRan is what a client sees when the call was sent to the
// upstream but its outcome could not be recorded: the truth, so that it is
// not blindly repeated.
var ErrAuditRan = &jsonrpc.Error{Code: jsonrpc.CodeInternalError,
	Message: "the call was sent to the upstream, but its outcome could not be recorded (the audit log is unavailable): check its effect before repeating it"}

// write puts rec on record. If the audit log refuses, the cause goes to
// the operational log with the request id, and the client gets ErrAudit
// (its cause is not the client's business).
func (pl *Pipeline) write(ctx context.Context, rec audit.Record) error {
	_, err := pl.decision(ctx, rec)
	return err
}

// decision is write for a decision that a call goes upstream: it returns
// the record's seq, which the call's outcome record cites (decision_seq),
// so that the two pair even when clients reuse a request id, and a
// decision a crash left without an outcome can be told (recovery).
func (pl *Pipeline) decision(ctx context.Context, rec audit.Record) (uint64, error) {
	r, err := pl.record(ctx, rec)
	if err != nil {
		pl.cfg.Logger.Error("audit unavailable", "request_id", rec.RequestID, "event", rec.Event, "target", rec.Target, "err", err)
		return 0, ErrAudit
	}
	return r.Seq, nil
}

// record appends rec to the audit log, in an audit span.
func (pl *Pipeline) record(ctx context.Context, rec audit.Record) (audit.Record, error) {
	_, span := pl.cfg.Tracer.Start(ctx, tracing.SpanAudit)
	defer span.End()
	r, err := pl.cfg.Auditor.Write(ctx, audit.Entry{Record: rec})
	if !span.Recording() { // tracing off: build no attributes
		return r, err
	}
	span.Set(tracing.AttrEvent.String(rec.Event))
	if err != nil {
		span.Fail("audit-unavailable")
		return r, err
	}
	span.Set(tracing.AttrSeq.Int64(int64(r.Seq)), tracing.AttrOutcome.String(string(r.Outcome)))
	return r, nil
}

// Deny records a refused request and returns what the client sees:
// clientErr, or ErrAudit if the refusal cannot be recorded. Refusals for
// the request's own faults (arguments, schema, headers) are recorded as
// failed, the others as denied.
func (pl *Pipeline) Deny(ctx context.Context, rec audit.Record, reason string, clientErr error) error {
	rec.Outcome, rec.Reason = audit.Denied, reason
	pl.cfg.Metrics.Decision("deny", reason)
	if reason == ReasonBadArguments || reason == ReasonBadSchema || reason == ReasonHeaderMismatch {
		rec.Outcome = audit.Failed
	}
	if err := pl.write(ctx, rec); err != nil {
		return err
	}
	return clientErr
}

// clip bounds a string from a request for the record.
func clip(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strings.ToValidUTF8(s, "?")
}
