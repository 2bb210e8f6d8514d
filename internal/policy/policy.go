// Package policy decides every tools/call: allow, approve (hold for human
// approval) or deny, with a 0–100 risk score, stable reason codes and the
// policy version. Policies are code: a YAML document of rules whose
// conditions are CEL expressions over the principal, the tool and its
// labels, the arguments, the caller's recent history and the time, with
// unit tests of their own. A policy is compiled once; evaluating it is
// pure and in memory. See DESIGN.md.
package policy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	yaml "go.yaml.in/yaml/v3"
)

// Effect is a decision's outcome. Deny beats approve beats allow.
type Effect string

const (
	Allow   Effect = "allow"
	Approve Effect = "approve" // allowed once enough people approve it
	Deny    Effect = "deny"
)

func (e Effect) rank() int { return map[Effect]int{Allow: 0, Approve: 1, Deny: 2}[e] }

// Stable reason codes besides the rules' own.
const (
	ReasonDefault         = "default-allow"          // granted, and no rule objected
	ReasonNoGrant         = "no-grant"               // the principal may not invoke the tool
	ReasonLabel           = "label-require-approval" // the tool's label demands approval
	ReasonScore           = "risk-score"             // the score reached approval.at_score
	ReasonRuleErrorPrefix = "rule-error:"            // a rule's condition failed to evaluate
)

// Limits on a policy document.
const (
	MaxSource    = 256 << 10
	MaxRules     = 500
	MaxCondition = 4096
	costLimit    = 1_000_000 // CEL cost units per condition evaluation
)

// Duration is a time.Duration written as "30s", "10m".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 10m", n.Line, clip(s))
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Document is a policy as written.
type Document struct {
	// Version of the document format: 1.
	Version     int    `yaml:"version"`
	Description string `yaml:"description,omitempty"`
	Session     struct {
		// Window is how far back session.classes looks (default 30m).
		Window Duration `yaml:"window,omitempty"`
	} `yaml:"session,omitempty"`
	Approval struct {
		// AtScore holds every call scoring at least this for approval
		// (1–100; 0: the score alone holds nothing).
		AtScore int `yaml:"at_score,omitempty"`
		// Expires is how long an approval request stays open (default 1h).
		Expires Duration `yaml:"expires,omitempty"`
	} `yaml:"approval,omitempty"`
	Rules []Rule `yaml:"rules"`
	// Requests decide the requests an upstream makes of the user's client
	// during a call (requests.go).
	Requests []RequestRule `yaml:"upstream_requests,omitempty"`
	Tests    []Test        `yaml:"tests,omitempty"`
}

// Rule is one condition and what follows when it holds.
type Rule struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description,omitempty"`
	When        string `yaml:"when"`     // CEL, evaluating to a bool
	Decision    Effect `yaml:"decision"` // allow, approve or deny
	Risk        int    `yaml:"risk,omitempty"`
	Reason      string `yaml:"reason,omitempty"` // reason code; default: the id
	Message     string `yaml:"message,omitempty"`
	// For approve: distinct approvers needed (default 1), a role they must
	// hold (besides the approve grant on the tool), how long the call
	// waits for them, and how long the request stays open.
	Approvers    int      `yaml:"approvers,omitempty"`
	ApproverRole string   `yaml:"approver_role,omitempty"`
	Wait         Duration `yaml:"wait,omitempty"`
	Expires      Duration `yaml:"expires,omitempty"`
}

// Requirement is what an approval needs: Approvers distinct people holding
// the approve grant on the tool (and Role, if set).
type Requirement struct {
	Approvers int    `json:"approvers"`
	Role      string `json:"role,omitempty"`
	Reason    string `json:"reason"` // the rule or label that asked
}

// Decision is the policy's answer for one call.
type Decision struct {
	Effect   Effect        `json:"decision"`
	Score    int           `json:"risk_score"`
	Reasons  []string      `json:"reasons"`
	Policy   int           `json:"policy_version"`
	Requires []Requirement `json:"requires,omitempty"` // for approve
	Wait     time.Duration `json:"-"`                  // how long to hold the call (0: the server's default)
	Expires  time.Duration `json:"-"`                  // how long the approval request stays open
	Message  string        `json:"message,omitempty"`  // from the deciding rule, for the client
}

// Input is everything a decision depends on.
type Input struct {
	User        string
	Roles       []string
	Service     bool
	KeyID       string
	Environment string
	Scope       []string // the key's scope as grant texts; nil: unscoped
	Granted     bool     // the principal holds the invoke grant on the tool
	Tool        Tool
	Args        map[string]any // the arguments as parsed (json.Number for numbers is fine)
	Touched     map[string]time.Time
	Now         time.Time
}

// Policy is a compiled policy document.
type Policy struct {
	Version  int    // assigned by the store; 0 for a draft
	Digest   string // SHA-256 of the source
	Doc      Document
	rules    []compiled
	requests []compiledRequest
	window   time.Duration
	expires  time.Duration
}

type compiled struct {
	Rule
	prg cel.Program
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Parse reads and compiles a policy document (YAML or JSON). Errors name
// the rule and say what is wrong; they are safe to show.
func Parse(src []byte) (*Policy, error) {
	if len(src) > MaxSource {
		return nil, fmt.Errorf("a policy is at most %d KiB", MaxSource>>10)
	}
	var doc Document
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("policy: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if dec.Decode(&extra) == nil {
		return nil, errors.New("policy: one document per file")
	}
	return compile(doc)
}

func compile(doc Document) (*Policy, error) {
	if doc.Version != 1 {
		return nil, fmt.Errorf("policy: version: want 1 (the document format), got %d", doc.Version)
	}
	if len(doc.Rules) > MaxRules {
		return nil, fmt.Errorf("policy: at most %d rules", MaxRules)
	}
	if a := doc.Approval.AtScore; a < 0 || a > 100 {
		return nil, fmt.Errorf("policy: approval.at_score: want 1 to 100 (0: off)")
	}
	p := &Policy{Doc: doc, window: time.Duration(doc.Session.Window), expires: time.Duration(doc.Approval.Expires)}
	if p.window == 0 {
		p.window = 30 * time.Minute
	}
	if p.window > MaxWindow {
		return nil, fmt.Errorf("policy: session.window: at most %s", MaxWindow)
	}
	if p.expires == 0 {
		p.expires = time.Hour
	}
	seen := map[string]bool{}
	for i, r := range doc.Rules {
		where := fmt.Sprintf("policy: rule %d", i+1)
		if r.ID != "" {
			where = fmt.Sprintf("policy: rule %q", clip(r.ID))
		}
		switch {
		case !idRE.MatchString(r.ID):
			return nil, fmt.Errorf("%s: id: 1–64 lower-case letters, digits, '.', '_', '-'", where)
		case seen[r.ID]:
			return nil, fmt.Errorf("%s: id used twice", where)
		case r.Decision != Allow && r.Decision != Approve && r.Decision != Deny:
			return nil, fmt.Errorf("%s: decision: want allow, approve or deny", where)
		case r.Risk < -100 || r.Risk > 100:
			return nil, fmt.Errorf("%s: risk: an adjustment from -100 to 100", where)
		case r.Reason != "" && !idRE.MatchString(r.Reason):
			return nil, fmt.Errorf("%s: reason: 1–64 lower-case letters, digits, '.', '_', '-'", where)
		case r.Decision != Approve && (r.Approvers != 0 || r.ApproverRole != "" || r.Wait != 0 || r.Expires != 0):
			return nil, fmt.Errorf("%s: approvers, approver_role, wait and expires apply to decision approve only", where)
		case r.Approvers < 0 || r.Approvers > MaxApprovers:
			return nil, fmt.Errorf("%s: approvers: want 1 to %d", where, MaxApprovers)
		case strings.TrimSpace(r.When) == "":
			return nil, fmt.Errorf("%s: when: a CEL condition is required (write true to always apply)", where)
		case len(r.When) > MaxCondition:
			return nil, fmt.Errorf("%s: when: at most %d characters", where, MaxCondition)
		case len(r.Message) > 500:
			return nil, fmt.Errorf("%s: message: at most 500 characters", where)
		}
		seen[r.ID] = true
		if r.Reason == "" {
			r.Reason = r.ID
		}
		if r.Decision == Approve && r.Approvers == 0 {
			r.Approvers = 1
		}
		ast, iss := celEnv.Compile(r.When)
		if iss != nil && iss.Err() != nil {
			return nil, fmt.Errorf("%s: when: %s", where, iss.Err())
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			return nil, fmt.Errorf("%s: when: the condition is a %s, not a bool", where, ast.OutputType())
		}
		prg, err := celEnv.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return nil, fmt.Errorf("%s: when: %s", where, err)
		}
		p.rules = append(p.rules, compiled{Rule: r, prg: prg})
	}
	if err := p.compileRequests(doc); err != nil {
		return nil, err
	}
	return p, nil
}

// Window is how far back the policy looks at the data classes a caller
// touched.
func (p *Policy) Window() time.Duration { return p.window }

// Evaluate decides one call. It never fails: a rule whose condition cannot
// be evaluated (a missing argument, a wrong type) counts as matching, with
// its decision raised to at least approve and reason rule-error:ID — a
// policy holds when the facts it needs are missing.
func (p *Policy) Evaluate(in Input) Decision {
	d := Decision{Effect: Allow, Policy: p.Version}
	if !in.Granted {
		d.Effect, d.Reasons = Deny, []string{ReasonNoGrant}
		return d
	}
	l := in.Tool.effective()
	base := BaseScore(l, in.Service)
	adjust := 0
	if l.RequireApproval {
		d.raise(Approve, ReasonLabel, "")
		d.Requires = append(d.Requires, Requirement{Approvers: max(l.Approvers, 1), Reason: ReasonLabel})
	}
	act := p.activation(in, l, base)
	for _, r := range p.rules {
		out, _, err := r.prg.Eval(act)
		effect, reason := r.Decision, r.Reason
		switch {
		case err != nil || out.Type() != types.BoolType:
			reason = ReasonRuleErrorPrefix + r.ID
			if effect == Allow {
				effect = Approve
			}
		case out != types.True:
			continue
		default:
			adjust += r.Risk
		}
		d.raise(effect, reason, r.Message)
		if effect == Approve {
			n := r.Approvers
			if n == 0 { // an allow rule that failed to evaluate
				n = 1
			}
			d.Requires = append(d.Requires, Requirement{Approvers: n, Role: r.ApproverRole, Reason: reason})
			d.Wait = max(d.Wait, time.Duration(r.Wait))
			d.Expires = max(d.Expires, time.Duration(r.Expires))
		}
	}
	d.Score = clamp(base + adjust)
	if at := p.Doc.Approval.AtScore; at > 0 && d.Score >= at && d.Effect == Allow {
		d.raise(Approve, ReasonScore, "")
		d.Requires = append(d.Requires, Requirement{Approvers: 1, Reason: ReasonScore})
	}
	switch d.Effect {
	case Allow:
		d.Requires = nil
		if len(d.Reasons) == 0 {
			d.Reasons = []string{ReasonDefault}
		}
	case Deny:
		d.Requires = nil
	case Approve:
		if d.Expires == 0 {
			d.Expires = p.expires
		}
	}
	return d
}

// raise adds a reason and lifts the effect if this one is stronger.
func (d *Decision) raise(e Effect, reason, message string) {
	if !slices.Contains(d.Reasons, reason) {
		d.Reasons = append(d.Reasons, reason)
	}
	if e.rank() > d.Effect.rank() {
		d.Effect = e
		if message != "" {
			d.Message = message
		}
	} else if e == d.Effect && d.Message == "" {
		d.Message = message
	}
}

// normalize turns parsed JSON (json.Number, Go ints) into the values CEL
// knows: int64 for integers that fit, float64 for other numbers.
func normalize(v any) any {
	switch v := v.(type) {
	case nil:
		return map[string]any{}
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalizeValue(x)
		}
		return out
	}
	return map[string]any{}
}

func normalizeValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) {
			return string(v)
		}
		return f
	case int:
		return int64(v)
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
		return float64(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalizeValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalizeValue(x)
		}
		return out
	}
	return v
}

//go:embed default.yaml
var defaultSource []byte

// DefaultSource is the policy every installation starts with.
func DefaultSource() []byte { return slices.Clone(defaultSource) }
