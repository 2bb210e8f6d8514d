package govern

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/tracing"
)

// Policies gives the policy in force (policy.Service).
type Policies interface {
	Current() *policy.Policy
}

// decide is the stage that evaluates the policy in force for p calling e
// with args: allow, approve or deny, with a risk score and reasons.
func (pl *Pipeline) decide(p *authn.Principal, e *catalog.Entry, args any) policy.Decision {
	m, _ := args.(map[string]any)
	in := policyInput(p, e.PolicyTool())
	in.Granted, in.Args, in.Touched, in.Now = p.Allows(authz.Invoke, e.Name), m, pl.history.Of(p.User, pl.cfg.Now()), pl.cfg.Now()
	return pl.cfg.Policy.Current().Evaluate(in)
}

// decideTraced is decide in a policy span, counted in the metrics.
func (pl *Pipeline) decideTraced(ctx context.Context, p *authn.Principal, e *catalog.Entry, args any) policy.Decision {
	_, span := pl.cfg.Tracer.Start(ctx, tracing.SpanPolicy)
	d := pl.decide(p, e, args)
	pl.cfg.Metrics.Decision(string(d.Effect), d.Reasons...)
	pl.cfg.Metrics.Risk(d.Score)
	if span.Recording() {
		span.Set(tracing.AttrDecision.String(string(d.Effect)), tracing.AttrRisk.Int(d.Score))
	}
	span.End()
	return d
}

// policyInput is what the policy sees of p's request of tool t.
func policyInput(p *authn.Principal, t policy.Tool) policy.Input {
	in := policy.Input{User: p.User, Roles: p.Roles, Service: p.Service, KeyID: p.KeyID, Environment: p.Environment, Tool: t}
	if p.Perms.Scope != nil {
		in.Scope = p.Perms.Scope.Strings()
	}
	if in.Environment == "" {
		in.Environment = authn.DefaultEnvironment
	}
	return in
}

// noteDecision puts a decision on the call's record.
func noteDecision(rec *audit.Record, d policy.Decision) {
	rec.Detail["decision"], rec.Detail["risk_score"], rec.Detail["reasons"], rec.Detail["policy_version"] =
		string(d.Effect), d.Score, d.Reasons, d.Policy
}

// policyDenied records a call the policy denied and answers it with a tool
// error the caller (and its model) can read.
func (pl *Pipeline) policyDenied(ctx context.Context, p *authn.Principal, rec audit.Record, d policy.Decision) (mcp.Result, error) {
	rec.Outcome, rec.Reason = audit.Denied, ReasonPolicyDeny
	if err := pl.write(ctx, rec); err != nil {
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
