// Package change is reviewed change management: a change to a governed
// object (the policy, a tool's pinned version, a tool's labels, a user's
// roles) becomes a
// proposal when its kind requires review. A proposal carries its author
// (user and key), a reason, the exact diff against the version it is
// based on, and the release gates it ran; other holders of the needed
// grant (never the author through any key, never a service account)
// approve or reject it, and the last approval needed applies the change in
// the transaction of its audit record, provided the object is still at
// the proposal's base version. See DESIGN.md.
package change

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/policy"
)

// Audit event types.
const (
	EventCreated    = "proposal-created"
	EventApproved   = "proposal-approved" // an approval short of the quorum
	EventApplied    = "proposal-applied"  // the approval that applied the change, with the change
	EventRejected   = "proposal-rejected"
	EventWithdrawn  = "proposal-withdrawn"
	EventSuperseded = "proposal-superseded" // found stale on approval: the object moved on
	EventRead       = "proposal-read"
)

// Kind is the kind of governed object a proposal changes.
type Kind string

// The kinds.
const (
	KindPolicy      Kind = "policy"       // the policy document
	KindToolVersion Kind = "tool-version" // which version of a tool is pinned (new, drifted, rollback)
	KindToolLabels  Kind = "tool-labels"  // a tool's governance labels
	KindUserRoles   Kind = "user-roles"   // the roles (so the grants) a user holds
)

// Kinds lists every kind, for flags and errors.
var Kinds = []Kind{KindPolicy, KindToolVersion, KindToolLabels, KindUserRoles}

// State of a proposal. An approval that reaches the quorum applies the
// change at once, so there is no resting "approved" state: applied.
type State string

// The states.
const (
	Open       State = "open"
	Applied    State = "applied"
	Rejected   State = "rejected"
	Withdrawn  State = "withdrawn"
	Superseded State = "superseded" // another change to the object came first
)

// Request is what an author proposes.
type Request struct {
	Kind   Kind   `json:"kind"`
	Reason string `json:"reason"`
	// Tool names the tool (tool-version, tool-labels).
	Tool string `json:"tool,omitempty"`
	// Version is the tool version to pin (tool-version), or the policy
	// version to put back (policy with Rollback).
	Version int `json:"version,omitempty"`
	// Source is the proposed policy document (policy, unless Rollback).
	Source string `json:"source,omitempty"`
	// Labels are the proposed labels (tool-labels); nil clears them.
	Labels   *policy.Labels `json:"labels,omitempty"`
	Rollback bool           `json:"rollback,omitempty"`
	// User and Roles: the user whose roles become Roles (user-roles).
	User  string   `json:"user,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// Gate is one release gate's result.
type Gate struct {
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Summary string `json:"summary"`
	Report  any    `json:"report,omitempty"`
}

// Vote is one reviewer's verdict.
type Vote struct {
	Reviewer string    `json:"reviewer"`
	KeyID    string    `json:"key_id"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason"`
	Override string    `json:"override,omitempty"` // why failing gates were overridden
	At       time.Time `json:"at"`
	Seq      uint64    `json:"seq"` // its audit record
}

// Proposal is one proposed change.
type Proposal struct {
	ID        string `json:"id"`
	Kind      Kind   `json:"kind"`
	Object    string `json:"object"` // "policy", "tool:NAME"
	State     State  `json:"state"`
	Author    string `json:"author"`
	AuthorKey string `json:"author_key"`
	// AuthorOwner is the human who answers for the author, a service
	// account: they can no more review it than the author could.
	AuthorOwner string    `json:"author_owner,omitempty"`
	Reason      string    `json:"reason"`
	CreatedAt   time.Time `json:"created_at"`
	Seq         uint64    `json:"seq"` // the proposal-created record
	// Base is the object's version the change was made against; applying
	// it anywhere else is refused (stale).
	Base   string  `json:"base"`
	Change Request `json:"change"`
	// Diff is the exact change, as unified-diff lines; Summary the rules,
	// properties or labels it touches.
	Diff       string   `json:"diff"`
	DiffSHA256 string   `json:"diff_sha256"`
	Summary    []string `json:"summary,omitempty"`
	Gates      []Gate   `json:"gates"`
	// FastPath: a rollback to a version that was itself reviewed (by
	// proposal FastPathOf): one reviewer, no gates.
	FastPath   bool   `json:"fast_path"`
	FastPathOf string `json:"fast_path_of,omitempty"`
	Quorum     int    `json:"quorum"`
	Votes      []Vote `json:"votes"`
	// Result is the object's version the change produced (applied).
	Result    string    `json:"result,omitempty"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	ClosedBy  string    `json:"closed_by,omitempty"`
	CloseNote string    `json:"close_note,omitempty"`
	AppliedAt uint64    `json:"applied_seq,omitempty"`
}

// GatesPassed reports whether every gate passed.
func (p *Proposal) GatesPassed() bool {
	for _, g := range p.Gates {
		if !g.Passed {
			return false
		}
	}
	return true
}

// Reviewers are the users who approved, in order.
func (p *Proposal) Reviewers() []string {
	var out []string
	for _, v := range p.Votes {
		if v.Approve {
			out = append(out, v.Reviewer)
		}
	}
	return out
}

// Query filters proposals; empty fields match all.
type Query struct {
	State  State
	Object string
	Limit  int
}

// Store is the read side.
type Store interface {
	Proposals(ctx context.Context, q Query) ([]Proposal, error) // newest first
	Proposal(ctx context.Context, id string) (Proposal, error)  // fault.NotFound
	// ReviewedVersion returns the id of an applied proposal that produced
	// version of object, or "".
	ReviewedVersion(ctx context.Context, object, version string) (string, error)
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	InsertProposal(ctx context.Context, p Proposal) error
	UpdateProposal(ctx context.Context, p Proposal) error
}

// AuditReader queries the audit index (the replay and the recorded-calls
// gate read it).
type AuditReader interface {
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
}

// Config configures a Service. Everything but the bounds is required.
type Config struct {
	Store    Store
	Auditor  audit.Appender
	Audit    AuditReader
	Policy   *policy.Service
	Catalog  *catalog.Catalog
	Identity identity.Reader
	// Identities applies user-roles changes.
	Identities *identity.Service
	Now        func() time.Time
	// Index, if set, is waited on (briefly) before the log's index is
	// read, so that the gates see the calls just recorded.
	Index interface {
		Settle(ctx context.Context, d time.Duration) uint64
	}
	// Require lists the kinds that need review; others apply directly.
	Require []Kind
	// Quorum is how many distinct reviewers approve (default 1).
	Quorum int
	// ReplayWindow (default 7 days) and ReplayMax (default 10000) bound
	// the replay of recorded decisions.
	ReplayWindow time.Duration
	ReplayMax    int
}

// Service runs proposals.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Auditor == nil || cfg.Audit == nil || cfg.Policy == nil || cfg.Catalog == nil || cfg.Identity == nil || cfg.Identities == nil || cfg.Now == nil {
		return nil, errors.New("change: missing dependency")
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = 1
	}
	if cfg.ReplayWindow <= 0 {
		cfg.ReplayWindow = 7 * 24 * time.Hour
	}
	if cfg.ReplayMax <= 0 {
		cfg.ReplayMax = 10000
	}
	return &Service{cfg: cfg}, nil
}

// Required reports whether changes of kind k need review.
func (s *Service) Required(k Kind) bool {
	return s != nil && slices.Contains(s.cfg.Require, k)
}

// ParseKinds reads a list of kinds ("all": every kind).
func ParseKinds(list []string) ([]Kind, error) {
	var out []Kind
	for _, raw := range list {
		for _, w := range strings.Split(raw, ",") {
			w = strings.TrimSpace(w)
			switch {
			case w == "":
			case w == "all":
				out = append(out, Kinds...)
			case slices.Contains(Kinds, Kind(w)):
				out = append(out, Kind(w))
			default:
				return nil, errors.New("unknown kind " + strings.ToValidUTF8(clip(w, 40), "?") + ": want policy, tool-version, tool-labels, user-roles or all")
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "prop_" + hex.EncodeToString(b[:])
}

func txStore(tx audit.Tx) (TxStore, error) {
	ts, ok := tx.(TxStore)
	if !ok {
		return nil, errors.New("change: store transaction lacks proposal operations")
	}
	return ts, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
