package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/event"
	"github.com/ostiary/ostiary/internal/evidence"
	"github.com/ostiary/ostiary/internal/identity"
)

func (e *env) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Query and verify the audit log"}
	cmd.AddCommand(e.auditQueryCmd(), e.auditVerifyCmd(), e.auditReindexCmd(), e.auditSearchTokenCmd())
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
	var user, eventName, outcome, reqID, target, since, until, contains, kind string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "query [--kind approval_record|exception_record|version_log|access_review] [--user NAME] [--event TYPE] [--since DURATION|TIME] [--limit N]",
		Short: "Query audit records, or evidence records assembled from them, newest first (needs the read-audit grant)",
		Long: `Query audit records, newest first (needs the read-audit grant).

--kind approval_record gives each approval's whole story: the request (who,
which tool version, the argument digest, score, reasons, policy version), the
votes, whether it ran and how that call ended, and the sequence numbers of
every audit record involved. --kind exception_record gives each denial or
failure (refused calls, holds, policy denials, rate limits, kill switches,
refused votes, failed upstream calls, undelivered webhooks) with what Ostiary
did about it. --kind version_log gives each version of each governed object
(the policy, tool:NAME for a tool's pinned version and labels): its author and
their reason, its reviewers (none: applied without review), the digest of its
diff, its gates and overrides, and the audit sequence numbers it comes from;
--target policy or --target tool:NAME picks one object. With --kind, only
--user, --since, --until and --limit apply (and --target for version_log).
--kind access_review gives each access review campaign: its items (what each
identity could do and did), each verdict and revocation, and the audit records
of all of it.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"user": user, "event": eventName, "outcome": outcome, "request_id": reqID, "target": target, "contains": contains} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if eventName != "" {
				if err := event.Check(eventName); err != nil {
					return usageError("--event: %v", err)
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
			if kind != "" {
				return e.evidenceQuery(cmd, kind, q, asJSON)
			}
			var page adminapi.AuditPage
			return e.call(cmd, "GET", "/audit", q, nil, &page, asJSON, func() error {
				t := newTable(e.stdout, "SEQ", "TIME", "EVENT", "OUTCOME", "REASON", "ACTOR", "KEY", "TARGET", "REQUEST")
				for _, r := range page.Records {
					t.row(strconv.FormatUint(r.Seq, 10), r.Time, r.Event, string(r.Outcome), dash(r.Reason), dash(r.Actor),
						dash(r.KeyID), dash(r.Target), dash(r.RequestID))
				}
				if page.IndexLag > 0 {
					fmt.Fprintf(e.stderr, "note: the audit index was %d records behind the log when it answered; the newest may be missing (query again)\n", page.IndexLag)
				}
				return t.flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "records of this actor")
	f.StringVar(&eventName, "event", "", "records of this event type, e.g. user-create, authn-failure")
	f.StringVar(&outcome, "outcome", "", "success, denied, error or unknown-after-crash (calls sent upstream whose outcome a crash kept off the record)")
	f.StringVar(&reqID, "request-id", "", "records of one request (correlation id)")
	f.StringVar(&target, "target", "", "records about one object, e.g. user:alice or key:KEYID")
	f.StringVar(&contains, "contains", "", "records whose target, reason or detail hold this text, e.g. a token from 'audit search-token'")
	f.StringVar(&since, "since", "", "records from this long ago (12h, 7d) or this time (RFC 3339)")
	f.StringVar(&until, "until", "", "records before this long ago or this time")
	f.IntVar(&limit, "limit", 50, "at most this many records (1–1000)")
	f.StringVar(&kind, "kind", "", "evidence records instead: approval_record, exception_record, version_log or access_review")
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

// evidenceQuery lists approval or exception records.
func (e *env) evidenceQuery(cmd *cobra.Command, kind string, q url.Values, asJSON bool) error {
	if kind == evidence.KindVersionLog && q.Has("target") {
		q.Set("object", q.Get("target"))
		q.Del("target")
	}
	for k := range q {
		if k != "user" && k != "since" && k != "until" && k != "limit" && (k != "object" || kind != evidence.KindVersionLog) {
			return usageError("--kind takes only --user, --since, --until and --limit (version_log also --target)")
		}
	}
	if l, _ := strconv.Atoi(q.Get("limit")); l > 500 {
		return usageError("--limit: at most 500 evidence records")
	}
	var path string
	switch kind {
	case evidence.KindApproval:
		path = "/audit/approval_records"
	case evidence.KindException:
		path = "/audit/exception_records"
	case evidence.KindVersionLog:
		path = "/audit/version_log"
	case evidence.KindAccessReview:
		path = "/audit/access_reviews"
	default:
		return usageError("--kind: approval_record, exception_record, version_log or access_review")
	}
	var page adminapi.EvidencePage
	return e.call(cmd, "GET", path, q, nil, &page, asJSON, func() error {
		if kind == evidence.KindAccessReview {
			t := newTable(e.stdout, "REVIEW", "NAME", "OUTCOME", "IDENTITY", "STATUS", "DECISION", "REVOKED", "BY", "AUDIT SEQS")
			for _, r := range page.AccessReviews {
				seqs := make([]string, len(r.Records))
				for i, x := range r.Records {
					seqs[i] = strconv.FormatUint(x.Seq, 10)
				}
				for _, it := range r.Review.Items {
					t.row(r.Review.ID, r.Review.Name, r.Outcome, it.Identity, it.Status, dash(it.Decision), list(it.Revoked), dash(it.AttestedBy), strings.Join(seqs, ","))
				}
			}
			return t.flush()
		}
		if kind == evidence.KindVersionLog {
			t := newTable(e.stdout, "TIME", "OBJECT", "CHANGE", "VERSION", "AUTHOR", "REVIEWERS", "REASON", "DIFF", "GATES", "AUDIT SEQS")
			for _, v := range page.VersionLog {
				seqs := make([]string, len(v.Records))
				for i, x := range v.Records {
					seqs[i] = strconv.FormatUint(x.Seq, 10)
				}
				diff := v.DiffSHA256
				if len(diff) > 12 {
					diff = diff[:12]
				}
				t.row(when(&v.Time), v.Object, v.Change, dash(v.Version), v.Author, dash(strings.Join(v.Reviewers, ",")), dash(v.Reason), dash(diff),
					gateSummary(v.Gates, v.Overrides), strings.Join(seqs, ","))
			}
			return t.flush()
		}
		if kind == evidence.KindApproval {
			t := newTable(e.stdout, "APPROVAL", "OUTCOME", "REQUESTER", "TOOL", "RISK", "REASONS", "VOTES", "CALL", "AUDIT SEQS")
			for _, r := range page.ApprovalRecords {
				call := "-"
				if r.Execution != nil {
					call = string(r.Execution.Outcome)
				}
				seqs := make([]string, len(r.Records))
				for i, x := range r.Records {
					seqs[i] = strconv.FormatUint(x.Seq, 10)
				}
				t.row(r.Approval.ID, r.Outcome, r.Approval.Requester, r.Approval.Tool, strconv.Itoa(r.Approval.Decision.Score),
					strings.Join(r.Approval.Decision.Reasons, ","), approvers(r.Approval), call, strings.Join(seqs, ","))
			}
			return t.flush()
		}
		t := newTable(e.stdout, "SEQ", "TIME", "EXCEPTION", "EVENT", "REASON", "ACTOR", "TARGET", "MITIGATION")
		for _, r := range page.ExceptionRecords {
			t.row(strconv.FormatUint(r.Seq, 10), when(&r.Time), r.Exception, r.Event, dash(r.Reason), dash(r.Actor), dash(r.Target), r.Mitigation)
		}
		return t.flush()
	})
}

// gateSummary is a version's gates in a column: name=pass|FAIL, and
// "overridden" when a reviewer accepted failing ones.
func gateSummary(gates map[string]any, overrides []any) string {
	if len(gates) == 0 {
		return "-"
	}
	var out []string
	for _, name := range sortedMapKeys(gates) {
		res := "FAIL"
		if g, ok := gates[name].(map[string]any); ok && g["passed"] == true {
			res = "pass"
		}
		out = append(out, name+"="+res)
	}
	if len(overrides) > 0 {
		out = append(out, "overridden")
	}
	return strings.Join(out, ",")
}
