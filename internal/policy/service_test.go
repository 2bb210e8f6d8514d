package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

type storedPolicy struct{ v Version }

type noAudit struct{}

func (s storedPolicy) Policies(context.Context) ([]Version, error)  { return []Version{s.v}, nil }
func (s storedPolicy) Policy(context.Context, int) (Version, error) { return s.v, nil }
func (noAudit) Write(context.Context, audit.Entry) (audit.Record, error) {
	return audit.Record{}, errors.New("no audit")
}

// A stored policy that does not compile under the typed variables (one
// accepted by an earlier version: tool.nme) neither stops the server nor
// lets an older policy decide: every call is denied until an admin sets
// or rolls back one that compiles, and Problem says so.
func TestStoredPolicyThatNoLongerCompiles(t *testing.T) {
	src := "version: 1\nrules:\n  - id: no-pay\n    when: tool.nme == \"fin.pay\"\n    decision: deny\n"
	s, err := NewService(context.Background(), storedPolicy{Version{Version: 4, Digest: digest([]byte(src)), Source: src}}, noAudit{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Problem(), "version 4 does not compile") || !strings.Contains(s.Problem(), "undefined field 'nme'") {
		t.Errorf("problem: %q", s.Problem())
	}
	d := s.Current().Evaluate(input(nil))
	if d.Effect != Deny || d.Policy != 4 || len(d.Reasons) != 1 || d.Reasons[0] != "policy-does-not-compile" {
		t.Errorf("decision under a policy that does not compile: %+v", d)
	}
}
