package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/review"
)

func (e *env) reviewsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "reviews", Short: "Access reviews: start a campaign, list, show, attest items"}
	cmd.AddCommand(e.reviewsStartCmd(), e.reviewsListCmd(), e.reviewsShowCmd(), e.reviewsAttestCmd())
	return cmd
}

func (e *env) reviewsStartCmd() *cobra.Command {
	var in review.StartRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "start --name NAME [--scope all|role:ROLE|user:USER] --reviewer USER... --due 14d",
		Short: "Start an access review: one item per identity in scope (needs manage-identities)",
		Long: `Start an access review campaign. Each enabled identity in scope becomes an
item listing its roles and their grants, the tools it may invoke, its admin
rights, its API keys with their age and last use, the last use of each role,
and what went unused for 90 days. Reviewers attest each item with
'ostiary reviews attest'; nobody reviews themselves (or a service account
they own). Items not attested by --due are recorded overdue and alerted.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case in.Name == "":
				return usageError("--name is required")
			case len(in.Reviewers) == 0:
				return usageError("--reviewer is required (repeatable)")
			case in.Due == "":
				return usageError("--due is required, such as 14d")
			}
			var c review.Campaign
			return e.call(cmd, "POST", "/reviews", nil, in, &c, asJSON, func() error {
				fmt.Fprintf(e.stdout, "review %s (%s) started: %d items, due %s, reviewers %s\n", safe(c.ID), safe(c.Name), len(c.Items), when(&c.DueAt), safe(list(c.Reviewers)))
				return e.printItems(c.Items)
			})
		},
	}
	cmd.Flags().StringVar(&in.Name, "name", "", "the campaign's name, such as Q4")
	cmd.Flags().StringVar(&in.Scope, "scope", "all", "who is reviewed: all, role:ROLE or user:USER")
	cmd.Flags().StringArrayVar(&in.Reviewers, "reviewer", nil, "a user who attests items (repeatable)")
	cmd.Flags().StringVar(&in.Due, "due", "", "how long reviewers have: 14d, 72h")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) printItems(items []review.Item) error {
	t := newTable(e.stdout, "ITEM", "IDENTITY", "STATUS", "ROLES", "TOOLS", "ADMIN RIGHTS", "KEYS", "UNUSED", "DECISION")
	for _, it := range items {
		var roles, keys []string
		for _, r := range it.Facts.Roles {
			roles = append(roles, r.Name+"(last "+when(&r.LastUsed)+")")
		}
		for _, k := range it.Facts.Keys {
			keys = append(keys, fmt.Sprintf("%s(%dd, last %s)", k.ID, k.AgeDays, when(&k.LastUsedAt)))
		}
		decision := dash(it.Decision)
		if it.Decision == review.Revoke {
			decision += " " + list(it.Revoked)
		}
		t.row(it.ID, safe(it.Identity), it.Status, safe(list(roles)), safe(list(it.Facts.Tools)), safe(list(it.Facts.AdminRights)), safe(list(keys)),
			safe(list(it.Facts.Unused)), safe(decision))
	}
	return t.flush()
}

func (e *env) reviewsListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List access reviews (all with read-audit, else those you review)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.ReviewList
			return e.call(cmd, "GET", "/reviews", nil, nil, &l, asJSON, func() error {
				t := newTable(e.stdout, "ID", "NAME", "SCOPE", "PENDING", "DUE", "REVIEWERS", "CREATED BY")
				for _, c := range l.Reviews {
					t.row(c.ID, safe(c.Name), safe(c.Scope), strconv.Itoa(c.Pending), when(&c.DueAt), safe(list(c.Reviewers)), safe(c.CreatedBy))
				}
				return t.flush()
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) reviewsShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an access review and its items",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var c review.Campaign
			return e.call(cmd, "GET", "/reviews/"+url.PathEscape(a[0]), nil, nil, &c, asJSON, func() error {
				fmt.Fprintf(e.stdout, "review %s (%s), scope %s, due %s, %d pending, reviewers %s\n", safe(c.ID), safe(c.Name), safe(c.Scope), when(&c.DueAt),
					c.Pending, safe(list(c.Reviewers)))
				return e.printItems(c.Items)
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) reviewsAttestCmd() *cobra.Command {
	var in review.AttestRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "attest ITEM (--keep | --revoke GRANT...) --reason TEXT",
		Short: "Attest a review item: keep its access, or revoke grants (role:ROLE, key:KEYID) at once",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			switch {
			case in.Keep == (len(in.Revoke) > 0):
				return usageError("give either --keep or --revoke GRANT")
			case strings.TrimSpace(in.Reason) == "":
				return usageError("--reason is required: say why")
			}
			var it review.Item
			return e.call(cmd, "POST", "/reviews/items/"+url.PathEscape(a[0])+"/attest", nil, in, &it, asJSON, func() error {
				if it.Decision == review.Revoke {
					fmt.Fprintf(e.stdout, "%s attested: revoked %s from %s\n", safe(it.ID), safe(list(it.Revoked)), safe(it.Identity))
				} else {
					fmt.Fprintf(e.stdout, "%s attested: %s keeps its access\n", safe(it.ID), safe(it.Identity))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&in.Keep, "keep", false, "the identity keeps everything it has")
	cmd.Flags().StringArrayVar(&in.Revoke, "revoke", nil, "a grant to take away now: role:ROLE or key:KEYID (repeatable)")
	cmd.Flags().StringVar(&in.Reason, "reason", "", "why (recorded)")
	jsonFlag(cmd, &asJSON)
	return cmd
}
