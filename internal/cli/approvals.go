package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/jcs"
)

func (e *env) approvalsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "approvals", Short: "Calls held for approval: list, show, approve, deny"}
	cmd.AddCommand(e.approvalsListCmd(), e.approvalsShowCmd(), e.approvalsDecideCmd(true), e.approvalsDecideCmd(false))
	return cmd
}

func needs(a approval.Approval) string { return strings.Join(a.Needs(), "; ") }

func approvers(a approval.Approval) string { return list(a.Tally()) }

func (e *env) approvalsListCmd() *cobra.Command {
	var pending, asJSON bool
	var status string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--pending | --status STATUS] [--limit N]",
		Short: "List approval requests you may see, newest first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if pending {
				if status != "" {
					return usageError("--pending and --status exclude each other")
				}
				status = string(approval.Pending)
			}
			if status != "" {
				q.Set("status", status)
			}
			if limit != 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			var l adminapi.ApprovalList
			return e.call(cmd, "GET", "/approvals", q, nil, &l, asJSON, func() error {
				t := newTable(e.stdout, "ID", "STATUS", "REQUESTER", "TOOL", "RISK", "REASONS", "NEEDS", "VOTES", "EXPIRES")
				for _, a := range l.Approvals {
					t.row(a.ID, string(a.Status), a.Requester, a.Tool, strconv.Itoa(a.Decision.Score), strings.Join(a.Decision.Reasons, ","),
						needs(a), approvers(a), when(&a.ExpiresAt))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "only requests waiting for a decision")
	cmd.Flags().StringVar(&status, "status", "", "only requests in this status: pending, approved, denied, expired or used")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most N (default 100, at most 500)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// printApproval shows what an approver decides on, every string through
// safe: the exact tool version and definition digest the approval binds,
// the arguments with their byte length and SHA-256 (of the RFC 8785 form
// stored and shown, so what is read is what is hashed), and the votes.
func (e *env) printApproval(a approval.Approval) {
	fmt.Fprintf(e.stdout, "approval:   %s (%s)\nrequester:  %s (key %s, request %s)\n",
		safe(a.ID), safe(string(a.Status)), safe(a.Requester), safe(a.KeyID), safe(a.RequestID))
	if a.Owner != "" {
		fmt.Fprintf(e.stdout, "owner:      %s (the requesting service account's)\n", safe(a.Owner))
	}
	args, check := canonicalArgs(a)
	fmt.Fprintf(e.stdout, "tool:       %s on %s, version %d\ndefinition: sha256 %s\narguments:  %s\nargs bytes: %d\nargs hash:  sha256 %s (%s)\n",
		safe(a.Tool), safe(a.Upstream), a.ToolVersion, safe(a.ToolDigest), safe(args), a.ArgsBytes, safe(a.ArgsSHA256), check)
	fmt.Fprintf(e.stdout, "risk:       %d/100, policy version %d, reasons %s\nneeds:      %s\ncreated:    %s\nexpires:    %s\n",
		a.Decision.Score, a.Decision.Policy, safe(strings.Join(a.Decision.Reasons, ", ")), safe(needs(a)), when(&a.CreatedAt), when(&a.ExpiresAt))
	if a.Decision.Message != "" {
		fmt.Fprintf(e.stdout, "message:    %s\n", safe(a.Decision.Message))
	}
	for _, v := range a.Votes {
		verb := "approved"
		if !v.Approve {
			verb = "denied"
		}
		fmt.Fprintf(e.stdout, "vote:       %s %s at %s: %s\n", safe(v.Approver), verb, when(&v.At), safe(v.Reason))
	}
}

// canonicalArgs restores the RFC 8785 form of the arguments (the server's
// JSON encoder may have re-escaped them) and says whether it is exactly
// what the request's digest and length cover.
func canonicalArgs(a approval.Approval) (string, string) {
	c, err := jcs.Canonicalize(a.Args)
	if err != nil {
		return string(a.Args), "WARNING: the arguments shown are not canonical JSON"
	}
	sum := sha256.Sum256(c)
	if hex.EncodeToString(sum[:]) != a.ArgsSHA256 || len(c) != a.ArgsBytes {
		return string(c), "WARNING: does not match the arguments shown"
	}
	return string(c), "matches the arguments shown"
}

func (e *env) approvalsShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one approval request: who asked, for exactly what, why it is held, and the votes",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var ap approval.Approval
			return e.call(cmd, "GET", "/approvals/"+url.PathEscape(a[0]), nil, nil, &ap, asJSON, func() error {
				e.printApproval(ap)
				return nil
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) approvalsDecideCmd(approve bool) *cobra.Command {
	verb := "approve"
	short := "Approve a held call (needs the approve grant on its tool; never your own request)"
	if !approve {
		verb = "deny"
		short = "Deny a held call (needs the approve grant on its tool; never your own request)"
	}
	var reason string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   verb + " ID --reason TEXT",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError("--reason is required: say why")
			}
			var ap approval.Approval
			return e.call(cmd, "POST", "/approvals/"+url.PathEscape(a[0])+"/"+verb, nil, adminapi.ApprovalDecision{Reason: reason}, &ap, asJSON, func() error {
				switch ap.Status {
				case approval.Approved:
					fmt.Fprintf(e.stdout, "%s approved: %s may now repeat the call once, until %s\n", safe(ap.ID), safe(ap.Requester), when(&ap.ExpiresAt))
				case approval.Denied:
					fmt.Fprintf(e.stdout, "%s denied\n", safe(ap.ID))
				default:
					fmt.Fprintf(e.stdout, "your vote on %s is recorded; it still needs %s (votes so far: %s)\n", safe(ap.ID), safe(needs(ap)), safe(approvers(ap)))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	jsonFlag(cmd, &asJSON)
	return cmd
}
