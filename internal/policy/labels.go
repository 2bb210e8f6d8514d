package policy

import (
	"fmt"
	"regexp"
	"slices"
)

// Data classes Ostiary knows the sensitivity of; others may be used (and
// count as Unclassified in the risk score).
const (
	ClassPublic       = "public"
	ClassInternal     = "internal"
	ClassPII          = "pii"
	ClassFinancial    = "financial"
	ClassSecret       = "secret"
	ClassRegulated    = "regulated"
	ClassUnclassified = "unclassified" // a tool nobody has labelled with a data class
)

// Risk tiers, lowest first.
var Tiers = []string{"low", "medium", "high", "critical"}

// MaxApprovers bounds how many distinct approvers a label or rule may ask
// for.
const MaxApprovers = 10

// Labels are Ostiary's governance labels of a tool. An upstream's own
// annotations are untrusted hints, used only until a tool is labelled.
type Labels struct {
	DataClasses     []string `json:"data_classes" yaml:"data_classes,omitempty"`
	Risk            string   `json:"risk,omitempty" yaml:"risk,omitempty"` // a tier, or empty
	Irreversible    bool     `json:"irreversible" yaml:"irreversible,omitempty"`
	Egress          bool     `json:"egress" yaml:"egress,omitempty"` // sends data outside the organisation
	Owner           string   `json:"owner,omitempty" yaml:"owner,omitempty"`
	RequireApproval bool     `json:"require_approval" yaml:"require_approval,omitempty"`
	Approvers       int      `json:"approvers,omitempty" yaml:"approvers,omitempty"` // distinct approvers a labelled approval needs; 0: 1
	// AllowElicitation lets the tool's upstream ask the user for input
	// during a call (elicitation/create), AllowSampling lets it ask the
	// user's model (sampling/createMessage); without them both are refused.
	AllowElicitation bool `json:"allow_elicitation" yaml:"allow_elicitation,omitempty"`
	AllowSampling    bool `json:"allow_sampling" yaml:"allow_sampling,omitempty"`
}

var (
	classRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	ownerRE = regexp.MustCompile(`^[\pL\pN][\pL\pN ._@-]{0,99}$`)
)

// Validate checks labels; its errors are safe to show.
func (l *Labels) Validate() error {
	for _, c := range l.DataClasses {
		if !classRE.MatchString(c) {
			return fmt.Errorf("data class %q: 1–32 lower-case letters, digits and '-', starting with a letter", clip(c))
		}
	}
	slices.Sort(l.DataClasses)
	l.DataClasses = slices.Compact(l.DataClasses)
	if l.DataClasses == nil {
		l.DataClasses = []string{}
	}
	if l.Risk != "" && !slices.Contains(Tiers, l.Risk) {
		return fmt.Errorf("risk %q: want one of low, medium, high, critical", clip(l.Risk))
	}
	if l.Owner != "" && !ownerRE.MatchString(l.Owner) {
		return fmt.Errorf("owner %q: 1–100 letters, digits, spaces and . _ @ -", clip(l.Owner))
	}
	if l.Approvers < 0 || l.Approvers > MaxApprovers {
		return fmt.Errorf("approvers: want 1 to %d", MaxApprovers)
	}
	if l.Approvers > 0 && !l.RequireApproval {
		return fmt.Errorf("approvers is set but the label does not require approval")
	}
	return nil
}

// Hints are an upstream's annotations of a tool, as MCP defines them: a
// tool that is not read-only is destructive and open-world unless it says
// otherwise.
type Hints struct {
	ReadOnly, Destructive, OpenWorld, Idempotent bool
}

// Tool is what the policy knows of the tool being called.
type Tool struct {
	Name     string
	Upstream string
	Version  int
	Labels   *Labels // nil: not labelled; Hints stand in
	Hints    Hints
}

// effective returns the labels the policy works with: the tool's own, or
// defaults from its hints (an unlabelled tool's data is unclassified, a
// destructive one counts as irreversible, an open-world one as egress).
func (t Tool) effective() Labels {
	if t.Labels != nil {
		return *t.Labels
	}
	l := Labels{DataClasses: []string{ClassUnclassified}}
	if !t.Hints.ReadOnly {
		l.Irreversible = t.Hints.Destructive
		l.Egress = t.Hints.OpenWorld
	}
	return l
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
