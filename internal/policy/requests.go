package policy

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Upstream requests. During a call, an upstream may ask the user's client
// something: elicitation (a form, or a URL to open) or sampling (the
// user's model). Each is refused unless the tool's labels allow it
// (allow_elicitation, allow_sampling) or a rule of the document's
// upstream_requests section does. These rules see principal and tool as
// call rules do, and request: kind ("elicitation", "sampling"), mode
// ("form", "url", or "" for sampling), url_host (a URL elicitation's host,
// lower case) and target ("tool:NAME", "prompt:NAME", "resource:URI").
// Deny beats allow; no match leaves the decision to the labels; a rule
// that fails to evaluate counts as a deny (rule-error:ID). The operator's
// URL allow-list and the URL's form are checked before any rule, and no
// rule overrides them.

// RequestRule is one upstream_requests rule: allow or deny.
type RequestRule struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description,omitempty"`
	When        string `yaml:"when"`     // CEL over principal, tool and request, evaluating to a bool
	Decision    Effect `yaml:"decision"` // allow or deny
	Reason      string `yaml:"reason,omitempty"`
}

// RequestInput is what a decision on an upstream request depends on.
type RequestInput struct {
	Input                              // the principal and the tool (Granted, Args and Touched are not used)
	Kind, Mode, URLHost, Target string // the request
}

type compiledRequest struct {
	RequestRule
	prg cel.Program
}

// requestVars is request, typed as the other variables are (vars.go): a
// condition naming a field that does not exist fails to compile.
type requestVars struct {
	Kind    string `cel:"kind"`
	Mode    string `cel:"mode"`
	URLHost string `cel:"url_host"`
	Target  string `cel:"target"`
}

const typeRequest = "ostiary.Request"

var requestEnv = func() *cel.Env {
	env, err := celEnv.Extend(
		ext.NativeTypes(types.NativeTypeFor[requestVars](types.NativeTypeAlias(typeRequest), types.ParseStructTags(true))),
		cel.Variable("request", cel.ObjectType(typeRequest)))
	if err != nil {
		panic(err)
	}
	return env
}()

// compileRequests compiles the upstream_requests rules of doc into p.
func (p *Policy) compileRequests(doc Document) error {
	if len(doc.Requests) > MaxRules {
		return fmt.Errorf("policy: at most %d upstream_requests rules", MaxRules)
	}
	seen := map[string]bool{}
	for i, r := range doc.Requests {
		where := fmt.Sprintf("policy: upstream_requests rule %d", i+1)
		if r.ID != "" {
			where = fmt.Sprintf("policy: upstream_requests rule %q", clip(r.ID))
		}
		switch {
		case !idRE.MatchString(r.ID):
			return fmt.Errorf("%s: id: 1–64 lower-case letters, digits, '.', '_', '-'", where)
		case seen[r.ID]:
			return fmt.Errorf("%s: id used twice", where)
		case r.Decision != Allow && r.Decision != Deny:
			return fmt.Errorf("%s: decision: want allow or deny", where)
		case r.Reason != "" && !idRE.MatchString(r.Reason):
			return fmt.Errorf("%s: reason: 1–64 lower-case letters, digits, '.', '_', '-'", where)
		case strings.TrimSpace(r.When) == "":
			return fmt.Errorf("%s: when: a CEL condition is required (write true to always apply)", where)
		case len(r.When) > MaxCondition:
			return fmt.Errorf("%s: when: at most %d characters", where, MaxCondition)
		}
		seen[r.ID] = true
		if r.Reason == "" {
			r.Reason = r.ID
		}
		ast, iss := requestEnv.Compile(r.When)
		if iss != nil && iss.Err() != nil {
			return fmt.Errorf("%s: when: %s", where, iss.Err())
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			return fmt.Errorf("%s: when: the condition is a %s, not a bool", where, ast.OutputType())
		}
		prg, err := requestEnv.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return fmt.Errorf("%s: when: %s", where, err)
		}
		p.requests = append(p.requests, compiledRequest{RequestRule: r, prg: prg})
	}
	return nil
}

// DecideRequest is the policy's say on an upstream request: Deny or Allow
// with the deciding rule's reason, or "" if no rule matched (the tool's
// labels decide). A rule that fails to evaluate denies.
func (p *Policy) DecideRequest(in RequestInput) (Effect, string) {
	if len(p.requests) == 0 {
		return "", ""
	}
	act := p.activation(in.Input, in.Tool.effective(), 0)
	act.request = &requestVars{Kind: in.Kind, Mode: in.Mode, URLHost: in.URLHost, Target: in.Target}
	var effect Effect
	reason := ""
	for _, r := range p.requests {
		out, _, err := r.prg.Eval(act)
		switch {
		case err != nil || out.Type() != types.BoolType:
			return Deny, ReasonRuleErrorPrefix + r.ID
		case out != types.True:
			continue
		case r.Decision == Deny:
			return Deny, r.Reason
		case effect == "":
			effect, reason = Allow, r.Reason
		}
	}
	return effect, reason
}
