package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream"
)

// Reason codes of policy outcomes.
const (
	ReasonPolicyDeny = "policy-deny"
	ReasonHeld       = "approval-required"
	// ReasonPendingCap: the caller already has the most pending requests.
	ReasonPendingCap = "user-pending-cap"
	// ReasonApprovalsDown: approval_status could not read the requests.
	ReasonApprovalsDown = "approvals-unavailable"
)

// Policies gives the policy in force (policy.Service).
type Policies interface {
	Current() *policy.Policy
}

// Users finds what a user would be as a caller, for explain (no key: no
// scope, the default environment).
type Users interface {
	PrincipalOf(ctx context.Context, user string) (*authn.Principal, error)
}

// decide evaluates the policy for p calling e with args.
func (g *Gateway) decide(p *authn.Principal, e *catalog.Entry, args any) policy.Decision {
	m, _ := args.(map[string]any)
	in := policy.Input{User: p.User, Roles: p.Roles, Service: p.Service, KeyID: p.KeyID, Environment: p.Environment,
		Granted: p.Allows(authz.Invoke, e.Name), Tool: e.PolicyTool(), Args: m, Touched: g.history.Of(p.User, g.cfg.Now()), Now: g.cfg.Now()}
	if p.Perms.Scope != nil {
		in.Scope = p.Perms.Scope.Strings()
	}
	if in.Environment == "" {
		in.Environment = authn.DefaultEnvironment
	}
	return g.cfg.Policy.Current().Evaluate(in)
}

// noteDecision puts a decision on the call's record.
func noteDecision(rec *audit.Record, d policy.Decision) {
	rec.Detail["decision"], rec.Detail["risk_score"], rec.Detail["reasons"], rec.Detail["policy_version"] =
		string(d.Effect), d.Score, d.Reasons, d.Policy
}

// policyDenied records a call the policy denied and answers it with a tool
// error the caller (and its model) can read.
func (g *Gateway) policyDenied(ctx context.Context, p *authn.Principal, rec audit.Record, d policy.Decision) (mcp.Result, error) {
	rec.Outcome, rec.Reason = audit.Denied, ReasonPolicyDeny
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("Denied by policy (version %d; reasons: %s).", d.Policy, strings.Join(d.Reasons, ", "))
	if d.Message != "" {
		msg += " " + d.Message
	}
	return toolError(msg + " Request " + p.RequestID + "."), nil
}

func toolError(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// Explanation is a decision explained, for `ostiary policy explain`.
type Explanation struct {
	User     string          `json:"user"`
	Tool     string          `json:"tool"`
	Version  int             `json:"tool_version"`
	Labels   *policy.Labels  `json:"labels"`
	Hints    policy.Hints    `json:"hints"`
	Decision policy.Decision `json:"decision"`
	Problem  string          `json:"problem,omitempty"` // why the call would fail before the policy (arguments)
}

// Explain shows the decision user would get calling tool with args, now,
// without calling anything (manage-policy:* or read-audit:*). A tool the
// user may not see is explained as denied for no-grant, like any other.
func (g *Gateway) Explain(ctx context.Context, asker *authn.Principal, user, tool string, raw json.RawMessage) (Explanation, error) {
	rec := asker.Record(policy.EventExplain, "tool:"+clip(tool)) // names from the request: bounded on record
	rec.Detail = map[string]any{"as": clip(user)}
	out := Explanation{User: user, Tool: tool}
	if !policy.MayExplain(asker) {
		return out, audit.Refuse(ctx, g.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-policy or read-audit grant"))
	}
	if g.cfg.Users == nil {
		return out, audit.Refuse(ctx, g.cfg.Auditor, rec, fault.New(fault.Unavailable, "explain is not available"))
	}
	p, err := g.cfg.Users.PrincipalOf(ctx, user)
	if err != nil {
		return out, audit.Refuse(ctx, g.cfg.Auditor, rec, err)
	}
	e, ok := g.cfg.Catalog.Snapshot().Lookup(tool)
	if !ok {
		return out, audit.Refuse(ctx, g.cfg.Auditor, rec, fault.New(fault.NotFound, "tool %q is not in the catalog", tool))
	}
	args, err := arguments(raw)
	if err != nil {
		return out, audit.Refuse(ctx, g.cfg.Auditor, rec, fault.New(fault.Invalid, "ARGS must be a JSON object: %s", clip(err.Error())))
	}
	if e.Changed && !e.KeepPinned {
		out.Problem = "the upstream presents a definition other than the pinned one: every call is refused (" + ReasonDefinitionChanged + ") until a version is activated"
	} else if e.SchemaErr != nil {
		out.Problem = "the tool's pinned input schema is invalid: every call is refused"
	} else if err := e.Schema.Validate(args.value); err != nil {
		out.Problem = "the arguments do not match the pinned input schema, so the call would be refused before the policy: " + clip(err.Error())
	}
	out.Version, out.Labels, out.Hints = e.Version, e.Labels, e.Hints
	out.Decision = g.decide(p, e, args.value)
	rec.Detail["args_sha256"] = args.digest
	noteDecision(&rec, out.Decision)
	if _, err := g.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return out, err
	}
	return out, nil
}

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
func (g *Gateway) held(ctx context.Context, p *authn.Principal, rec audit.Record, d policy.Decision, e *catalog.Entry,
	args callArgs, relay *upstream.Relay) (id string, proceed bool, res mcp.Result, err error) {
	call := approval.Call{Requester: p.User, Tool: e.Name, ToolDigest: e.Digest, ArgsSHA256: args.digest}
	if a, ok, err := g.cfg.Approvals.Claim(ctx, call, p.KeyID, p.RequestID); err != nil {
		g.cfg.Logger.Error("audit unavailable: cannot claim an approval", "request_id", p.RequestID, "err", err)
		return "", false, nil, errAudit
	} else if ok {
		return a.ID, true, nil, nil
	}
	a, _, err := g.cfg.Approvals.Request(ctx, approval.Approval{Requester: p.User, Owner: p.Owner, KeyID: p.KeyID, Tool: e.Name, Upstream: e.Upstream,
		ToolVersion: e.Version, ToolDigest: e.Digest, ArgsSHA256: args.digest, Args: args.canonical, Decision: d, RequestID: p.RequestID})
	var capped *approval.PendingCapError
	if errors.As(err, &capped) {
		return "", false, nil, g.deny(ctx, rec, ReasonPendingCap, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: capped.Error()})
	}
	if err != nil {
		g.cfg.Logger.Error("audit unavailable: cannot open an approval request", "request_id", p.RequestID, "err", err)
		return "", false, nil, errAudit
	}
	rec.Outcome, rec.Reason = audit.Denied, ReasonHeld
	rec.Detail["approval"] = a.ID
	if err := g.write(ctx, rec); err != nil {
		return "", false, nil, err
	}
	wait := g.cfg.ApprovalWait
	if d.Wait > 0 {
		wait = d.Wait
	}
	settled, stop := g.cfg.Approvals.Wait(a.ID)
	defer stop()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	g.progress(relay, fmt.Sprintf("waiting for approval %s (%s)", a.ID, strings.Join(d.Reasons, ", ")))
	// A decision may have landed between Request and Wait: look once.
	if a2, ok, err := g.cfg.Approvals.Claim(ctx, call, p.KeyID, p.RequestID); err == nil && ok {
		return a2.ID, true, nil, nil
	}
wait:
	for {
		select {
		case <-settled:
			if a2, ok, err := g.cfg.Approvals.Claim(ctx, call, p.KeyID, p.RequestID); err != nil {
				g.cfg.Logger.Error("audit unavailable: cannot claim an approval", "request_id", p.RequestID, "err", err)
				return "", false, nil, errAudit
			} else if ok {
				return a2.ID, true, nil, nil
			}
			break wait
		case <-tick.C:
			g.progress(relay, fmt.Sprintf("still waiting for approval %s", a.ID))
		case <-timer.C:
			break wait
		case <-ctx.Done():
			return "", false, nil, ctx.Err()
		}
	}
	msg := fmt.Sprintf("This call needs approval (%s; risk %d/100, policy version %d) and was not performed. ",
		strings.Join(d.Reasons, ", "), d.Score, d.Policy)
	status := approval.Pending
	if mine, err := g.cfg.Approvals.Mine(ctx, p.User, a.ID); err == nil && len(mine) == 1 {
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
func (g *Gateway) progress(relay *upstream.Relay, msg string) {
	if relay == nil || relay.ProgressToken == nil || relay.Session == nil {
		return
	}
	relay.Session.NotifyProgress(relay.Ctx, &mcp.ProgressNotificationParams{ProgressToken: relay.ProgressToken, Message: msg})
}

// approvalStatus serves the built-in approval_status: the caller's own
// requests only (another user's id answers like an unknown one).
func (g *Gateway) approvalStatus(ctx context.Context, p *authn.Principal, rec audit.Record, args any, argErr error) (mcp.Result, error) {
	var in struct {
		ID string `json:"id"`
	}
	if argErr == nil {
		b, _ := json.Marshal(args)
		argErr = strictjson.Decode(b, &in)
	}
	if argErr != nil || (in.ID != "" && !approval.ValidID(in.ID)) {
		return nil, g.deny(ctx, rec, ReasonBadArguments, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: "invalid arguments for tool \"approval_status\": want {\"id\": \"apr_…\"} or {}"})
	}
	mine, err := g.cfg.Approvals.Mine(ctx, p.User, in.ID)
	if err != nil {
		return nil, g.deny(ctx, rec, ReasonApprovalsDown, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "approvals are unavailable"})
	}
	type item struct {
		ID        string    `json:"id"`
		Status    string    `json:"status"`
		Tool      string    `json:"tool"`
		Reasons   []string  `json:"reasons"`
		RiskScore int       `json:"risk_score"`
		Approvals int       `json:"approvals"`
		Needs     []string  `json:"needs"`
		ExpiresAt time.Time `json:"expires_at"`
		Next      string    `json:"next"`
	}
	items := []item{}
	for _, a := range mine {
		it := item{ID: a.ID, Status: string(a.Status), Tool: a.Tool, Reasons: a.Decision.Reasons, RiskScore: a.Decision.Score, ExpiresAt: a.ExpiresAt, Needs: a.Needs()}
		for _, v := range a.Votes {
			if v.Approve {
				it.Approvals++
			}
		}
		switch a.Status {
		case approval.Pending:
			it.Next = "wait for the approvers"
		case approval.Approved:
			it.Next = "repeat exactly the same call (same tool and arguments) to run it, once"
		case approval.Used:
			it.Next = "done: the approved call ran"
		default:
			it.Next = "the call will not run; ask again by repeating it if it is still needed"
		}
		items = append(items, it)
	}
	rec.Detail["decision"], rec.Detail["results"] = "allow", len(items)
	if err := g.write(ctx, rec); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"approvals": items})
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(body)}},
		StructuredContent: map[string]any{"approvals": items}}, nil
}
