package evidence

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

// KindVersionLog is the evidence kind of a governed object's versions.
const KindVersionLog = "version_log"

// The records a version comes from. They are named here as strings (the
// packages that record them import this one's callers, not the reverse).
const (
	eventPolicySet      = "policy-set"
	eventPolicyRollback = "policy-rolled-back"
	eventToolActivated  = "tool-version-activated"
	eventToolLabels     = "tool-labels-set"
	eventToolCreated    = "tool-version-created" // a new tool active at version 1 on its upstream's first sync
	eventUserRoles      = "user-roles-set"
	eventProposalApply  = "proposal-applied"
	eventProposalRead   = "proposal-read"
)

// VersionEntry is one version of one governed object: who made it, who
// reviewed it (none: applied without review), why, the digest of its
// diff, its gates, and the audit records it comes from.
type VersionEntry struct {
	Kind       string         `json:"kind"`
	Object     string         `json:"object"` // policy, tool:NAME, user:NAME
	Change     string         `json:"change"` // policy, tool-version, tool-labels, user-roles
	Version    string         `json:"version,omitempty"`
	Time       time.Time      `json:"time"`
	Author     string         `json:"author"`
	AuthorKey  string         `json:"author_key,omitempty"`
	Reviewed   bool           `json:"reviewed"`
	Reviewers  []string       `json:"reviewers"`
	Reason     string         `json:"reason,omitempty"`
	Proposal   string         `json:"proposal,omitempty"`
	DiffSHA256 string         `json:"diff_sha256,omitempty"`
	Digest     string         `json:"digest,omitempty"` // of the policy document or tool definition, where recorded
	Gates      map[string]any `json:"gates,omitempty"`
	Overrides  []any          `json:"overrides,omitempty"`
	FastPath   bool           `json:"fast_path,omitempty"`
	Records    []Ref          `json:"records"` // oldest first
}

// VersionQuery filters the version log: Object (policy, tool:NAME) and
// User (the author) if set, and when the version was made.
type VersionQuery struct {
	Query
	Object string
}

// VersionLog returns the versions matching q, newest first: every change
// that made a version, reviewed (proposal-applied) or direct.
func VersionLog(ctx context.Context, a Auditor, q VersionQuery) ([]VersionEntry, error) {
	var recs []audit.Record
	for _, ev := range []string{eventPolicySet, eventPolicyRollback, eventToolActivated, eventToolCreated, eventToolLabels, eventUserRoles, eventProposalApply} {
		aq := audit.Query{Event: ev, Outcome: audit.Success, Since: q.Since, Until: q.Until, Limit: audit.MaxLimit}
		if ev != eventProposalApply {
			aq.Target = q.Object // a direct change's record targets its object: the bound is then the object's own
		}
		rs, err := a.QueryAudit(ctx, aq)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rs...)
	}
	slices.SortFunc(recs, func(x, y audit.Record) int { return int(int64(y.Seq) - int64(x.Seq)) })
	out := []VersionEntry{}
	for _, r := range recs {
		if len(out) >= q.Limit && q.Limit > 0 {
			break
		}
		e := versionEntry(r)
		if (q.Object != "" && e.Object != q.Object) || (q.User != "" && e.Author != q.User) {
			continue
		}
		if e.Proposal != "" {
			cited, err := a.QueryAudit(ctx, audit.Query{Target: "proposal:" + e.Proposal, Limit: audit.MaxLimit})
			if err != nil {
				return nil, err
			}
			slices.Reverse(cited)
			e.Records = e.Records[:0]
			for _, c := range cited {
				if c.Event == eventProposalRead {
					continue // who looked at it is on record, but made nothing
				}
				e.Records = append(e.Records, ref(c))
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func versionEntry(r audit.Record) VersionEntry {
	str := func(k string) string { s, _ := r.Detail[k].(string); return s }
	num := func(k string) string {
		if v, ok := r.Detail[k]; ok && v != nil {
			return toString(v)
		}
		return ""
	}
	e := VersionEntry{Kind: KindVersionLog, Object: r.Target, Time: r.Time, Author: r.Actor, AuthorKey: r.KeyID, Reviewers: []string{},
		Version: num("version"), Digest: str("digest"), Records: []Ref{ref(r)}}
	switch r.Event {
	case eventPolicySet, eventPolicyRollback:
		e.Change = "policy"
	case eventToolActivated, eventToolCreated:
		e.Change = "tool-version"
	case eventUserRoles:
		e.Change, e.Version = "user-roles", joinRoles(r.Detail["roles"])
	case eventToolLabels:
		e.Change = "tool-labels"
	case eventProposalApply:
		e.Object, e.Change, e.Reviewed, e.Proposal = str("object"), str("kind"), true, str("proposal")
		e.Author, e.AuthorKey, e.Reason, e.DiffSHA256 = str("author"), str("author_key"), str("author_reason"), str("diff_sha256")
		e.Version = num("result")
		if rs, ok := r.Detail["reviewers"].([]any); ok {
			for _, x := range rs {
				if s, ok := x.(string); ok {
					e.Reviewers = append(e.Reviewers, s)
				}
			}
		} else if rs, ok := r.Detail["reviewers"].([]string); ok {
			e.Reviewers = append(e.Reviewers, rs...)
		}
		e.Gates, _ = r.Detail["gates"].(map[string]any)
		e.Overrides, _ = r.Detail["overrides"].([]any)
		e.FastPath, _ = r.Detail["fast_path"].(bool)
	}
	return e
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v) // a number: json.Number once read back, an int in memory
}

// joinRoles is a user-roles version as the reviewed path names it
// (identity.RolesBase): the sorted role names, comma-separated.
func joinRoles(v any) string {
	var out []string
	switch x := v.(type) {
	case []string:
		out = slices.Clone(x)
	case []any:
		for _, r := range x {
			if s, ok := r.(string); ok {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}
