package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Test is a policy unit test: an input and the decision it must get.
type Test struct {
	Name      string `yaml:"name"`
	Principal struct {
		User        string   `yaml:"user"`
		Roles       []string `yaml:"roles,omitempty"`
		Service     bool     `yaml:"service,omitempty"`
		Environment string   `yaml:"environment,omitempty"`
		Scope       []string `yaml:"scope,omitempty"`
	} `yaml:"principal"`
	// Granted is whether the principal holds the invoke grant (default true).
	Granted *bool `yaml:"granted,omitempty"`
	Tool    struct {
		Name     string  `yaml:"name"`
		Upstream string  `yaml:"upstream,omitempty"`
		Version  int     `yaml:"version,omitempty"`
		Labels   *Labels `yaml:"labels,omitempty"` // absent: unlabelled, hints apply
		Hints    struct {
			ReadOnly    bool `yaml:"read_only,omitempty"`
			Destructive bool `yaml:"destructive,omitempty"`
			OpenWorld   bool `yaml:"open_world,omitempty"`
			Idempotent  bool `yaml:"idempotent,omitempty"`
		} `yaml:"hints,omitempty"`
	} `yaml:"tool"`
	Args map[string]any `yaml:"args,omitempty"`
	// Session lists data classes the caller touched, and how long ago
	// (class: duration; "0s" for just now).
	Session map[string]Duration `yaml:"session,omitempty"`
	Now     time.Time           `yaml:"now,omitempty"` // default 2026-01-05T10:00:00Z, a Monday morning
	Expect  struct {
		Decision Effect   `yaml:"decision"`
		Reasons  []string `yaml:"reasons,omitempty"` // each must be among the decision's reasons
		Score    *int     `yaml:"score,omitempty"`   // exact
	} `yaml:"expect"`
}

// TestResult is the outcome of one Test.
type TestResult struct {
	Name     string   `json:"name"`
	Passed   bool     `json:"passed"`
	Got      Decision `json:"got"`
	Problems []string `json:"problems,omitempty"`
}

var defaultTestTime = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// RunTests runs the document's tests against the policy.
func (p *Policy) RunTests() ([]TestResult, error) {
	var out []TestResult
	for i, t := range p.Doc.Tests {
		name := t.Name
		if name == "" {
			name = fmt.Sprintf("test %d", i+1)
		}
		if t.Expect.Decision != Allow && t.Expect.Decision != Approve && t.Expect.Decision != Deny {
			return nil, fmt.Errorf("policy: %s: expect.decision: want allow, approve or deny", name)
		}
		if t.Tool.Name == "" {
			return nil, fmt.Errorf("policy: %s: tool.name is required", name)
		}
		if t.Tool.Labels != nil {
			if err := t.Tool.Labels.Validate(); err != nil {
				return nil, fmt.Errorf("policy: %s: tool.labels: %s", name, err)
			}
		}
		in := Input{User: t.Principal.User, Roles: t.Principal.Roles, Service: t.Principal.Service,
			Environment: t.Principal.Environment, Scope: t.Principal.Scope, Granted: t.Granted == nil || *t.Granted,
			Tool: Tool{Name: t.Tool.Name, Upstream: t.Tool.Upstream, Version: t.Tool.Version, Labels: t.Tool.Labels,
				Hints: Hints(t.Tool.Hints)},
			Args: t.Args, Now: t.Now, Touched: map[string]time.Time{}}
		if in.Now.IsZero() {
			in.Now = defaultTestTime
		}
		if in.Environment == "" {
			in.Environment = "default"
		}
		for c, ago := range t.Session {
			in.Touched[c] = in.Now.Add(-time.Duration(ago))
		}
		d := p.Evaluate(in)
		r := TestResult{Name: name, Got: d}
		if d.Effect != t.Expect.Decision {
			r.Problems = append(r.Problems, fmt.Sprintf("decision %s, want %s", d.Effect, t.Expect.Decision))
		}
		for _, want := range t.Expect.Reasons {
			if !slices.Contains(d.Reasons, want) {
				r.Problems = append(r.Problems, fmt.Sprintf("reason %s missing (got %s)", want, strings.Join(d.Reasons, ", ")))
			}
		}
		if t.Expect.Score != nil && *t.Expect.Score != d.Score {
			r.Problems = append(r.Problems, fmt.Sprintf("score %d, want %d", d.Score, *t.Expect.Score))
		}
		r.Passed = len(r.Problems) == 0
		out = append(out, r)
	}
	return out, nil
}
