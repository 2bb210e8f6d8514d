package govern

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream"
)

// Approvals keeps approval requests (approval.Service).
type Approvals interface {
	Claim(ctx context.Context, c approval.Call, keyID, requestID string) (approval.Approval, bool, error)
	Request(ctx context.Context, a approval.Approval) (approval.Approval, bool, error)
	Wait(id string) (<-chan struct{}, func())
	// Mine returns user's own requests: the one with id, or the recent ones.
	Mine(ctx context.Context, user, id string) ([]approval.Approval, error)
}

// held runs the approval gate for a call the policy wants approved. If an
// approval for exactly this call (requester, tool version, arguments) is
// there, it is used, once, and held returns its id with proceed set. Else
// the call becomes (or joins) a pending request and waits for it, up to
// the rule's or the server's wait, keeping the client informed with
// progress notifications if it asked for them; approved in time, it
// proceeds; otherwise the client gets a tool error naming the request.
func (pl *Pipeline) held(ctx context.Context, p *authn.Principal, rec audit.Record, d policy.Decision, e *catalog.Entry,
	args Args, relay *upstream.Relay) (id string, proceed bool, res mcp.Result, err error) {
	call := approval.Call{Requester: p.User, Tool: e.Name, ToolDigest: e.Digest, ArgsSHA256: args.digest}
	if a, ok, err := pl.cfg.Approvals.Claim(ctx, call, p.KeyID, p.RequestID); err != nil {
		pl.cfg.Logger.Error("audit unavailable: cannot claim an approval", "request_id", p.RequestID, "err", err)
		return "", false, nil, ErrAudit
	} else if ok {
		return a.ID, true, nil, nil
	}
	a, _, err := pl.cfg.Approvals.Request(ctx, approval.Approval{Requester: p.User, Owner: p.Owner, KeyID: p.KeyID, Tool: e.Name, Upstream: e.Upstream,
		ToolVersion: e.Version, ToolDigest: e.Digest, ArgsSHA256: args.digest, Args: args.canonical, Decision: d, RequestID: p.RequestID})
	var capped *approval.PendingCapError
	if errors.As(err, &capped) {
		return "", false, nil, pl.Deny(ctx, rec, ReasonPendingCap, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: capped.Error()})
	}
	if err != nil {
		pl.cfg.Logger.Error("audit unavailable: cannot open an approval request", "request_id", p.RequestID, "err", err)
		return "", false, nil, ErrAudit
	}
	rec.Outcome, rec.Reason = audit.Denied, ReasonHeld
	rec.Detail["approval"] = a.ID
	if err := pl.write(ctx, rec); err != nil {
		return "", false, nil, err
	}
	wait := pl.cfg.ApprovalWait
	if d.Wait > 0 {
		wait = d.Wait
	}
	settled, stop := pl.cfg.Approvals.Wait(a.ID)
	defer stop()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	pl.progress(relay, fmt.Sprintf("waiting for approval %s (%s)", a.ID, strings.Join(d.Reasons, ", ")))
	// A decision may have landed between Request and Wait: look once.
	if a2, ok, err := pl.cfg.Approvals.Claim(ctx, call, p.KeyID, p.RequestID); err == nil && ok {
		return a2.ID, true, nil, nil
	}
wait:
	for {
		select {
		case <-settled:
			if a2, ok, err := pl.cfg.Approvals.Claim(ctx, call, p.KeyID, p.RequestID); err != nil {
				pl.cfg.Logger.Error("audit unavailable: cannot claim an approval", "request_id", p.RequestID, "err", err)
				return "", false, nil, ErrAudit
			} else if ok {
				return a2.ID, true, nil, nil
			}
			break wait
		case <-tick.C:
			pl.progress(relay, fmt.Sprintf("still waiting for approval %s", a.ID))
		case <-timer.C:
			break wait
		case <-ctx.Done():
			return "", false, nil, ctx.Err()
		}
	}
	msg := fmt.Sprintf("This call needs approval (%s; risk %d/100, policy version %d) and was not performed. ",
		strings.Join(d.Reasons, ", "), d.Score, d.Policy)
	status := approval.Pending
	if mine, err := pl.cfg.Approvals.Mine(ctx, p.User, a.ID); err == nil && len(mine) == 1 {
		status = mine[0].Status
	}
	switch status {
	case approval.Denied:
		msg += fmt.Sprintf("Approval request %s was denied: the call will not run.", a.ID)
	case approval.Expired:
		msg += fmt.Sprintf("Approval request %s expired undecided: repeat the call to ask again.", a.ID)
	default:
		msg += fmt.Sprintf("Approval request %s is open until %s: once it is approved, repeat exactly the same call to run it (once). "+
			"Check with the approval_status tool.", a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if d.Message != "" {
		msg += " " + d.Message
	}
	return "", false, toolError(msg), nil
}

// progress sends a progress notification on the call, if its client
// asked for them.
func (pl *Pipeline) progress(relay *upstream.Relay, msg string) {
	if relay == nil || relay.ProgressToken == nil || relay.Session == nil {
		return
	}
	relay.Session.NotifyProgress(relay.Ctx, &mcp.ProgressNotificationParams{ProgressToken: relay.ProgressToken, Message: msg})
}
