package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/change"
)

// proposedAnswer is the answer of a change that became a proposal (202).
type proposedAnswer struct {
	Proposal *change.Proposal `json:"proposal,omitempty"`
}

func reasonFlag(cmd *cobra.Command, reason *string) {
	cmd.Flags().StringVar(reason, "reason", "", "why (recorded; required where the change needs review, and then it becomes a proposal)")
}

// printProposed says that a change became a proposal and what it needs.
func (e *env) printProposed(p *change.Proposal) error {
	fmt.Fprintf(e.stdout, "review required: proposal %s opened for %s; nothing changed yet\n", safe(p.ID), safe(what(p)))
	e.printGates(p)
	fmt.Fprintf(e.stdout, "another holder of the grant approves it: ostiary proposals approve %s --reason TEXT\n", safe(p.ID))
	return nil
}

func (e *env) printGates(p *change.Proposal) {
	for _, g := range p.Gates {
		res := "pass"
		if !g.Passed {
			res = "FAIL"
		}
		fmt.Fprintf(e.stdout, "  gate %-18s %s  %s\n", safe(g.Name), res, safe(g.Summary))
	}
}

func (e *env) proposalsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "proposals", Short: "Reviewed changes: list, show, approve, reject or withdraw proposals",
		Long: `Where a change needs review (serve --require-review ENV, --require-review-kinds
KIND), 'policy set', 'policy rollback', 'tools activate', 'tools rollback' and
'tools label' open a proposal instead of applying: its author, reason, exact
diff and release gates are kept, and another holder of the grant it needs (not
its author, through any key, nor a service account) approves or rejects it.
The approval that reaches the quorum (serve --review-quorum) applies it, with
its record, if the object has not changed since; otherwise it is superseded.`}
	cmd.AddCommand(e.proposalsListCmd(), e.proposalsShowCmd(), e.proposalsReviewCmd(true), e.proposalsReviewCmd(false), e.proposalsWithdrawCmd())
	return cmd
}

func (e *env) proposalsListCmd() *cobra.Command {
	var state, object string
	var asJSON, ids bool
	cmd := &cobra.Command{
		Use:   "list [--state open|applied|rejected|withdrawn|superseded] [--object policy|tool:NAME] [--ids]",
		Short: "List proposals, newest first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			if object != "" {
				q.Set("object", object)
			}
			var out adminapi.ProposalList
			return e.call(cmd, "GET", "/proposals", q, nil, &out, asJSON, func() error {
				if ids {
					for _, p := range out.Proposals {
						fmt.Fprintln(e.stdout, safe(p.ID))
					}
					return nil
				}
				t := newTable(e.stdout, "ID", "STATE", "KIND", "OBJECT", "AUTHOR", "CREATED", "APPROVALS", "GATES", "REASON")
				for _, p := range out.Proposals {
					gates := "pass"
					if !p.GatesPassed() {
						gates = "FAIL"
					}
					if p.FastPath {
						gates = "fast-path"
					}
					t.row(p.ID, string(p.State), string(p.Kind), p.Object, p.Author, when(&p.CreatedAt),
						fmt.Sprintf("%d/%d", len(p.Reviewers()), p.Quorum), gates, p.Reason)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only proposals in this state")
	cmd.Flags().StringVar(&object, "object", "", "only proposals changing this object")
	cmd.Flags().BoolVar(&ids, "ids", false, "print only their ids, one a line (for scripts)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) proposalsShowCmd() *cobra.Command {
	var asJSON, full bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a proposal: its diff, its gates (with the replay report) and its reviews",
		Long: `Show a proposal: its author and reason, the version it is based on, its
reviews, its release gates and what each found (for a policy, the replay of the
recorded decisions of the window: what would change, per tool and per user,
with examples), the rules or schema properties it touches, and its diff (the
changed lines with 3 lines of context; --full-diff for all of it).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var p change.Proposal
			return e.call(cmd, "GET", "/proposals/"+url.PathEscape(a[0]), nil, nil, &p, asJSON, func() error {
				e.printProposal(&p, full)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&full, "full-diff", false, "print the whole diff, unchanged lines too")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) printProposal(p *change.Proposal, full bool) {
	w := e.stdout
	fmt.Fprintf(w, "proposal %s for %s: %s\n", safe(p.ID), safe(what(p)), safe(string(p.State)))
	fmt.Fprintf(w, "author:   %s (key %s), %s\n", safe(p.Author), safe(dash(p.AuthorKey)), when(&p.CreatedAt))
	fmt.Fprintf(w, "reason:   %s\n", safe(p.Reason))
	fmt.Fprintf(w, "base:     %s", safe(p.Base))
	if p.Result != "" {
		fmt.Fprintf(w, "  →  result: %s", safe(p.Result))
	}
	fmt.Fprintf(w, "\nreviews:  %d of %d approvals needed", len(p.Reviewers()), p.Quorum)
	if p.FastPath {
		fmt.Fprintf(w, " (fast path: a rollback to a version reviewed in %s)", safe(p.FastPathOf))
	}
	fmt.Fprintln(w)
	for _, v := range p.Votes {
		verdict := "rejected"
		if v.Approve {
			verdict = "approved"
		}
		fmt.Fprintf(w, "  %s by %s (key %s) %s: %s", verdict, safe(v.Reviewer), safe(v.KeyID), when(&v.At), safe(v.Reason))
		if v.Override != "" {
			fmt.Fprintf(w, " [gates overridden: %s]", safe(v.Override))
		}
		fmt.Fprintf(w, " (audit seq %d)\n", v.Seq)
	}
	if p.CloseNote != "" {
		fmt.Fprintf(w, "closed:   %s\n", safe(p.CloseNote))
	}
	fmt.Fprintln(w, "gates:")
	e.printGates(p)
	for _, g := range p.Gates {
		if g.Name == "replay" {
			e.printReplay(g.Report)
		}
	}
	if len(p.Summary) > 0 {
		fmt.Fprintln(w, "changes:")
		for _, s := range p.Summary {
			fmt.Fprintf(w, "  %s\n", safe(s))
		}
	}
	diff := p.Diff
	if !full {
		diff = hunks(diff, 3)
	}
	fmt.Fprintf(w, "diff (sha256 %s):\n%s", safe(p.DiffSHA256[:min(16, len(p.DiffSHA256))]), safeText(diff))
}

// what names what a proposal changes.
func what(p *change.Proposal) string {
	if string(p.Kind) == p.Object {
		return p.Object
	}
	return p.Object + " (" + string(p.Kind) + ")"
}

// hunks keeps a line diff's changed lines with n lines of context around
// them; "…" stands for the kept lines left out.
func hunks(diff string, n int) string {
	lines := strings.SplitAfter(diff, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	keep := make([]bool, len(lines))
	for i, l := range lines {
		if !strings.HasPrefix(l, "  ") {
			for j := max(0, i-n); j <= min(len(lines)-1, i+n); j++ {
				keep[j] = true
			}
		}
	}
	var b strings.Builder
	skipped := false
	for i, l := range lines {
		if keep[i] {
			b.WriteString(l)
			skipped = false
		} else if !skipped {
			b.WriteString("  …\n")
			skipped = true
		}
	}
	return b.String()
}

// printReplay prints the replay gate's report: changes per tool and user,
// and examples.
func (e *env) printReplay(report any) {
	b, err := json.Marshal(report)
	if err != nil {
		return
	}
	var r change.ReplayReport
	if json.Unmarshal(b, &r) != nil {
		return
	}
	w := e.stdout
	fmt.Fprintf(w, "  replay of %s – %s: %d decisions read, %d replayed, %d unchanged\n", when(&r.Since), when(&r.Until), r.Considered, r.Replayed, r.Unchanged)
	for _, cause := range sortedMapKeys(r.Unreproducible) {
		fmt.Fprintf(w, "    not reproducible (%s): %d\n", safe(cause), r.Unreproducible[cause])
	}
	if len(r.Changed) == 0 {
		return
	}
	t := newTable(w, "    CHANGE", "BY", "WHO", "COUNT")
	for _, ch := range sortedMapKeys(r.Changed) {
		t.row("    "+ch, "all", "", strconv.Itoa(r.Changed[ch]))
		for _, tool := range sortedMapKeys(r.ByTool) {
			if n := r.ByTool[tool][ch]; n > 0 {
				t.row("    "+ch, "tool", tool, strconv.Itoa(n))
			}
		}
		for _, user := range sortedMapKeys(r.ByUser) {
			if n := r.ByUser[user][ch]; n > 0 {
				t.row("    "+ch, "user", user, strconv.Itoa(n))
			}
		}
	}
	_ = t.flush()
	for _, x := range r.Examples {
		fmt.Fprintf(w, "    e.g. seq %d %s: %s calling %s, %s → %s (%s)\n", x.Seq, when(&x.Time), safe(x.User), safe(x.Tool), safe(x.From), safe(x.To), safe(strings.Join(x.Reasons, ",")))
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (e *env) proposalsReviewCmd(approve bool) *cobra.Command {
	var reason, override string
	var asJSON bool
	verb, short := "approve", "Approve a proposal (the approval reaching the quorum applies it)"
	if !approve {
		verb, short = "reject", "Reject a proposal: it is closed and nothing changes"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID --reason TEXT",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError("--reason is required")
			}
			var p change.Proposal
			return e.call(cmd, "POST", "/proposals/"+url.PathEscape(a[0])+"/"+verb, nil, adminapi.ReviewRequest{Reason: reason, Override: override}, &p, asJSON, func() error {
				switch p.State {
				case change.Applied:
					fmt.Fprintf(e.stdout, "proposal %s approved and applied: %s is at %s now (audit seq %d)\n", safe(p.ID), safe(p.Object), safe(p.Result), p.AppliedAt)
				case change.Rejected:
					fmt.Fprintf(e.stdout, "proposal %s rejected; nothing changed\n", safe(p.ID))
				default:
					fmt.Fprintf(e.stdout, "proposal %s approved (%d of %d approvals); it applies at the last one\n", safe(p.ID), len(p.Reviewers()), p.Quorum)
				}
				return nil
			})
		},
	}
	reasonFlag(cmd, &reason)
	if approve {
		cmd.Flags().StringVar(&override, "override", "", "accept the proposal's failing gates, and say why (recorded)")
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) proposalsWithdrawCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "withdraw ID [--reason TEXT]",
		Short: "Withdraw your own open proposal",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var p change.Proposal
			return e.call(cmd, "POST", "/proposals/"+url.PathEscape(a[0])+"/withdraw", nil, adminapi.WithdrawRequest{Reason: reason}, &p, false, func() error {
				fmt.Fprintf(e.stdout, "proposal %s withdrawn\n", safe(p.ID))
				return nil
			})
		},
	}
	reasonFlag(cmd, &reason)
	return cmd
}

func (e *env) toolsRollbackCmd() *cobra.Command {
	var to int
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback TOOL [--to VERSION] --reason TEXT",
		Short: "Pin the version of a tool that was active before (or --to an earlier active one)",
		Long: `Pin an earlier version of a tool: the one active before the current one, or
--to VERSION, which must have been active once. Where tool versions need
review it is a proposal; a rollback to a version that was itself reviewed
takes the fast path: one reviewer, no gates.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if to < 0 {
				return usageError("--to must be a positive version")
			}
			var out struct {
				adminapi.ToolRollback
				proposedAnswer
			}
			return e.call(cmd, "POST", "/tools/rollback", nil, adminapi.ToolRollback{Tool: a[0], Version: to, Reason: reason}, &out, false, func() error {
				if out.Proposal != nil {
					return e.printProposed(out.Proposal)
				}
				fmt.Fprintf(e.stdout, "%s is pinned at version %d again\n", safe(a[0]), out.Version)
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the version to put back (default: the one active before)")
	reasonFlag(cmd, &reason)
	return cmd
}
