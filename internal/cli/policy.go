package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/policy"
)

func (e *env) policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Policy as code: the rules that allow, hold for approval or deny each call"}
	cmd.AddCommand(e.policySetCmd(), e.policyShowCmd(), e.policyHistoryCmd(), e.policyRollbackCmd(), e.policyTestCmd(), e.policyExplainCmd())
	return cmd
}

// readPolicyFile reads a policy document ("-": standard input).
func (e *env) readPolicyFile(name string) ([]byte, error) {
	var r io.Reader = e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError("%v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, policy.MaxSource+1))
	if err != nil {
		return nil, err
	}
	if len(b) > policy.MaxSource {
		return nil, usageError("%s: a policy is at most %d KiB", name, policy.MaxSource>>10)
	}
	return b, nil
}

func (e *env) printTests(results []policy.TestResult) (failed int) {
	t := newTable(e.stdout, "RESULT", "TEST", "DECISION", "SCORE", "REASONS", "PROBLEMS")
	for _, r := range results {
		res := "pass"
		if !r.Passed {
			res, failed = "FAIL", failed+1
		}
		t.row(res, r.Name, string(r.Got.Effect), strconv.Itoa(r.Got.Score), strings.Join(r.Got.Reasons, ","), strings.Join(r.Problems, "; "))
	}
	t.flush()
	return failed
}

func (e *env) policySetCmd() *cobra.Command {
	var asJSON bool
	var reason string
	cmd := &cobra.Command{
		Use:   "set FILE",
		Short: "Put a new policy in force (FILE, or - for standard input); its own tests must pass",
		Long: `Put a new policy in force. The document must compile and pass the tests it
carries (tests:), or nothing changes. It becomes the next version, on record;
earlier versions stay in 'policy history' ('policy show --version N' prints one,
'policy rollback N' puts it back in force). Needs the manage-policy grant.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			src, err := e.readPolicyFile(a[0])
			if err != nil {
				return err
			}
			var out struct {
				adminapi.PolicySet
				proposedAnswer
			}
			return e.call(cmd, "PUT", "/policy", nil, adminapi.SetPolicy{Source: string(src), Reason: reason}, &out, asJSON, func() error {
				if out.Proposal != nil {
					return e.printProposed(out.Proposal)
				}
				e.printTests(out.Tests)
				fmt.Fprintf(e.stdout, "\npolicy version %d in force (%d rules, %d tests passed, sha256 %s)\n", out.Version.Version, out.Version.Rules, len(out.Tests), out.Version.Digest[:16])
				return nil
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	reasonFlag(cmd, &reason)
	return cmd
}

func (e *env) policyShowCmd() *cobra.Command {
	var version int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--version N]",
		Short: "Print the policy in force (or version N)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if version != 0 {
				if version < 0 {
					return usageError("--version must be positive")
				}
				q.Set("version", strconv.Itoa(version))
			}
			var v policy.Version
			return e.call(cmd, "GET", "/policy", q, nil, &v, asJSON, func() error {
				fmt.Fprintf(e.stdout, "# policy version %d, set %s by %s, sha256 %s\n", v.Version, when(&v.CreatedAt), safe(v.CreatedBy), safe(v.Digest))
				fmt.Fprint(e.stdout, safeText(v.Source))
				if !strings.HasSuffix(v.Source, "\n") {
					fmt.Fprintln(e.stdout)
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "a version from 'policy history' (default: the one in force)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) policyHistoryCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List every policy version, newest (in force) first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h adminapi.PolicyHistory
			return e.call(cmd, "GET", "/policy/history", nil, nil, &h, asJSON, func() error {
				t := newTable(e.stdout, "VERSION", "SET", "BY", "RULES", "TESTS", "SHA256", "DESCRIPTION")
				for _, v := range h.Versions {
					t.row(strconv.Itoa(v.Version), when(&v.CreatedAt), v.CreatedBy, strconv.Itoa(v.Rules), strconv.Itoa(v.Tests), v.Digest[:16], v.Description)
				}
				return t.flush()
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) policyRollbackCmd() *cobra.Command {
	var asJSON bool
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback VERSION",
		Short: "Put an earlier policy version back in force, as a new version (on record)",
		Long: `Put the document of policy version VERSION (see 'policy history') back in force.
It becomes the next version, so history stays append-only, and the change is
recorded as policy-rolled-back with both versions. The document must still
compile and pass its own tests, or nothing changes. Needs the manage-policy grant.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := strconv.Atoi(a[0])
			if err != nil || n <= 0 {
				return usageError("VERSION must be a positive number")
			}
			var out struct {
				adminapi.PolicySet
				proposedAnswer
			}
			return e.call(cmd, "POST", "/policy/rollback", nil, adminapi.RollbackPolicy{Version: n, Reason: reason}, &out, asJSON, func() error {
				if out.Proposal != nil {
					return e.printProposed(out.Proposal)
				}
				e.printTests(out.Tests)
				fmt.Fprintf(e.stdout, "\nthe document of version %d is in force again as policy version %d (%d rules, %d tests passed, sha256 %s)\n",
					n, out.Version.Version, out.Version.Rules, len(out.Tests), out.Version.Digest[:min(16, len(out.Version.Digest))])
				return nil
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	reasonFlag(cmd, &reason)
	return cmd
}

func (e *env) policyTestCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "test FILE",
		Short: "Compile a policy and run its tests, locally (FILE, or - for standard input)",
		Long: `Compile a policy document and run the tests it carries, without a server.
Each test gives a principal, a tool with its labels (or hints), arguments, the
data classes the session touched and the time, and the decision expected (and
optionally reasons and the exact score). Exits 1 if any test fails.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			src, err := e.readPolicyFile(a[0])
			if err != nil {
				return err
			}
			p, err := policy.Parse(src)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			results, err := p.RunTests()
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			failed := 0
			if asJSON {
				for _, r := range results {
					if !r.Passed {
						failed++
					}
				}
				b, _ := json.Marshal(results)
				if err := printJSON(e.stdout, b); err != nil {
					return err
				}
			} else {
				failed = e.printTests(results)
				fmt.Fprintf(e.stdout, "\n%d rules, %d tests, %d failed\n", len(p.Doc.Rules), len(results), failed)
			}
			if failed > 0 {
				return &exitError{code: ExitError, err: fmt.Errorf("%d of %d policy tests failed", failed, len(results))}
			}
			if len(results) == 0 {
				fmt.Fprintln(e.stderr, "warning: the policy has no tests")
			}
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) policyExplainCmd() *cobra.Command {
	var as string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain --as USER TOOL [ARGS-JSON]",
		Short: "Show the decision, risk score and reasons USER would get calling TOOL, without calling it",
		Args:  args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if as == "" {
				return usageError("--as USER is required")
			}
			raw := json.RawMessage("{}")
			if len(a) == 2 {
				if !json.Valid([]byte(a[1])) {
					return usageError("ARGS-JSON is not valid JSON")
				}
				raw = json.RawMessage(a[1])
			}
			var x adminapi.ExplainAnswer
			return e.call(cmd, "POST", "/policy/explain", nil, adminapi.ExplainRequest{User: as, Tool: a[0], Args: raw}, &x, asJSON, func() error {
				d := x.Decision
				fmt.Fprintf(e.stdout, "decision:  %s\nrisk:      %d/100\nreasons:   %s\npolicy:    version %d\ntool:      %s (version %d; labels: %s)\n",
					safe(string(d.Effect)), d.Score, safe(strings.Join(d.Reasons, ", ")), d.Policy, safe(x.Tool), x.Version, safe(labelSummary(x.Labels)))
				for _, r := range d.Requires {
					who := "any holder of the approve grant"
					if r.Role != "" {
						who = "holders of role " + safe(r.Role)
					}
					fmt.Fprintf(e.stdout, "approval:  %d distinct approver(s), %s (%s)\n", r.Approvers, who, safe(r.Reason))
				}
				if d.Message != "" {
					fmt.Fprintf(e.stdout, "message:   %s\n", safe(d.Message))
				}
				if x.Problem != "" {
					fmt.Fprintf(e.stdout, "note:      %s\n", safe(x.Problem))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "the user whose call to explain")
	jsonFlag(cmd, &asJSON)
	return cmd
}
