package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/identity"
)

func (e *env) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Query and verify the audit log"}
	cmd.AddCommand(e.auditQueryCmd(), e.auditVerifyCmd(), e.auditSearchTokenCmd())
	return cmd
}

// parseWhen reads DURATION (that long ago: 90m, 12h, 7d) or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := identity.ParseLifetime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a duration such as 90m, 12h or 7d, or a time such as 2026-11-22T10:00:00Z", s)
	}
	return now.Add(-d), nil
}

func (e *env) auditQueryCmd() *cobra.Command {
	var user, event, outcome, reqID, target, since, until, contains string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "query [--user NAME] [--event TYPE] [--since DURATION|TIME] [--limit N]",
		Short: "Query audit records, newest first (needs the read-audit grant)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"user": user, "event": event, "outcome": outcome, "request_id": reqID, "target": target, "contains": contains} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for name, v := range map[string]string{"since": since, "until": until} {
				if v == "" {
					continue
				}
				t, err := parseWhen(v, e.now())
				if err != nil {
					return usageError("--%s %v", name, err)
				}
				q.Set(name, t.UTC().Format(time.RFC3339Nano))
			}
			if limit < 1 || limit > 1000 {
				return usageError("--limit must be between 1 and 1000")
			}
			q.Set("limit", strconv.Itoa(limit))
			var page adminapi.AuditPage
			return e.call(cmd, "GET", "/audit", q, nil, &page, asJSON, func() error {
				t := newTable(e.stdout, "SEQ", "TIME", "EVENT", "OUTCOME", "REASON", "ACTOR", "KEY", "TARGET", "REQUEST")
				for _, r := range page.Records {
					t.row(strconv.FormatUint(r.Seq, 10), r.Time, r.Event, string(r.Outcome), dash(r.Reason), dash(r.Actor),
						dash(r.KeyID), dash(r.Target), dash(r.RequestID))
				}
				return t.flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "records of this actor")
	f.StringVar(&event, "event", "", "records of this event type, e.g. user-create, authn-failure")
	f.StringVar(&outcome, "outcome", "", "success, denied or error")
	f.StringVar(&reqID, "request-id", "", "records of one request (correlation id)")
	f.StringVar(&target, "target", "", "records about one object, e.g. user:alice or key:KEYID")
	f.StringVar(&contains, "contains", "", "records whose target, reason or detail hold this text, e.g. a token from 'audit search-token'")
	f.StringVar(&since, "since", "", "records from this long ago (12h, 7d) or this time (RFC 3339)")
	f.StringVar(&until, "until", "", "records before this long ago or this time")
	f.IntVar(&limit, "limit", 50, "at most this many records (1–1000)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) auditSearchTokenCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "search-token",
		Short: "Turn a suspected credential (read from standard input) into the token that replaces it in audit records",
		Long: `Credentials (private keys, bearer tokens, cloud access keys, Ostiary API keys)
never reach the audit log: each is replaced by "[REDACTED hmac:…]", a keyed HMAC of
the credential. Give a suspected value on standard input (for a bearer token, the
token without "Bearer ") to get its token, then find the records that held it:

  ostiary audit search-token < suspect.txt
  ostiary audit query --contains hmac:…

Needs the read-audit grant; the request is recorded, never the value.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			value, err := e.readValue()
			if err != nil {
				return err
			}
			var out adminapi.SearchToken
			return e.call(cmd, "POST", "/audit/search-token", nil, adminapi.SearchTokenRequest{Value: value}, &out, asJSON, func() error {
				fmt.Fprintln(e.stdout, out.Token)
				return nil
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
