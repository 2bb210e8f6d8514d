package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
)

// Reason codes of policy outcomes.
const (
	ReasonPolicyDeny = "policy-deny"
	ReasonHeld       = "approval-required"
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
	if _, err := g.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, errAudit
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
	rec := asker.Record(policy.EventExplain, "tool:"+tool)
	rec.Detail = map[string]any{"as": user}
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
	args, digest, err := arguments(raw)
	if err != nil {
		return out, audit.Refuse(ctx, g.cfg.Auditor, rec, fault.New(fault.Invalid, "ARGS must be a JSON object: %s", clip(err.Error())))
	}
	if e.SchemaErr != nil {
		out.Problem = "the tool's pinned input schema is invalid: every call is refused"
	} else if err := e.Schema.Validate(args); err != nil {
		out.Problem = "the arguments do not match the pinned input schema, so the call would be refused before the policy: " + clip(err.Error())
	}
	out.Version, out.Labels, out.Hints = e.Version, e.Labels, e.Hints
	out.Decision = g.decide(p, e, args)
	rec.Detail["args_sha256"] = digest
	noteDecision(&rec, out.Decision)
	if _, err := g.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return out, err
	}
	return out, nil
}

// held answers a call the policy holds for approval.
func (g *Gateway) held(ctx context.Context, p *authn.Principal, rec audit.Record, d policy.Decision) (mcp.Result, error) {
	rec.Outcome, rec.Reason = audit.Denied, ReasonHeld
	if _, err := g.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, errAudit
	}
	return toolError(fmt.Sprintf("This call needs approval (policy version %d; reasons: %s), and approvals are not available on this server: it was not performed. Request %s.",
		d.Policy, strings.Join(d.Reasons, ", "), p.RequestID)), nil
}
