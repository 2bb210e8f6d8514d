package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/alert"
)

func (e *env) alertsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "alerts", Short: "Governance alerts (serve --alerts): list, acknowledge"}
	cmd.AddCommand(e.alertsListCmd(), e.alertsAckCmd())
	return cmd
}

func (e *env) alertsListCmd() *cobra.Command {
	var open, asJSON bool
	var status string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--open | --status open|acknowledged] [--limit N]",
		Short: "List alerts, newest first (needs the read-audit grant)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if open {
				if status != "" {
					return usageError("--open and --status exclude each other")
				}
				status = alert.Open
			}
			if status != "" && status != alert.Open && status != alert.Acknowledged {
				return usageError("--status: open or acknowledged")
			}
			if status != "" {
				q.Set("status", status)
			}
			if limit != 0 {
				if limit < 1 || limit > 500 {
					return usageError("--limit: 1 to 500")
				}
				q.Set("limit", strconv.Itoa(limit))
			}
			var l adminapi.AlertList
			return e.call(cmd, "GET", "/alerts", q, nil, &l, asJSON, func() error {
				t := newTable(e.stdout, "ID", "STATUS", "RAISED", "RULE", "SUBJECT", "ROUTE", "ESCALATION", "SUMMARY")
				for _, a := range l.Alerts {
					esc := "due " + when(&a.EscalateAt)
					switch {
					case a.Status == alert.Acknowledged:
						esc = "acked by " + a.AckedBy
					case !a.EscalatedAt.IsZero():
						esc = "escalated to " + a.EscalateTo
					}
					t.row(safe(a.ID), a.Status, when(&a.RaisedAt), safe(a.Rule), safe(a.Subject), safe(a.Route), safe(esc), safe(a.Summary))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "only alerts not yet acknowledged")
	cmd.Flags().StringVar(&status, "status", "", "open or acknowledged")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most N (default 100, at most 500)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) alertsAckCmd() *cobra.Command {
	var reason string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ack ID --reason TEXT",
		Short: "Acknowledge an alert: it is not escalated (needs the read-audit grant)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError("--reason is required: say what you did about it")
			}
			var al alert.Alert
			return e.call(cmd, "POST", "/alerts/"+url.PathEscape(a[0])+"/ack", nil, adminapi.AlertAck{Reason: reason}, &al, asJSON, func() error {
				fmt.Fprintf(e.stdout, "%s acknowledged by %s at %s\n", safe(al.ID), safe(al.AckedBy), when(&al.AckedAt))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "what was done about it (recorded)")
	jsonFlag(cmd, &asJSON)
	return cmd
}
