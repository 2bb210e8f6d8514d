// Package review runs access reviews: a campaign freezes, for every
// identity in its scope, what it can do (roles and their grants, the tools
// they reach, admin rights, keys with their ages) and what it did with it
// (last use per role and key); named reviewers attest each item, keeping
// or revoking grants. Revocations go through identity, so they are
// audited with their own records and cut the identity's next call.
// Nobody reviews themselves (nor a service account they own). Items not
// attested by the due time are recorded overdue and raise an alert.
package review

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// Audit events.
const (
	EventStart   = "review-start"
	EventList    = "review-list"
	EventShow    = "review-show"
	EventAttest  = "review-attest"
	EventOverdue = "review-item-overdue"
)

// Item statuses and decisions.
const (
	Pending  = "pending"
	Attested = "attested"
	Keep     = "keep"
	Revoke   = "revoke"
)

// UnusedAfter is how long a grant may go unused before a review lists it
// as unused.
const UnusedAfter = 90 * 24 * time.Hour

// Campaign is one access review.
type Campaign struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	Reviewers []string  `json:"reviewers"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	DueAt     time.Time `json:"due_at"`
	Pending   int       `json:"pending"`
	Items     []Item    `json:"items,omitempty"`
}

// Item is one identity under review.
type Item struct {
	ID         string    `json:"id"`
	Review     string    `json:"review"`
	Identity   string    `json:"identity"`
	Facts      Facts     `json:"facts"`
	Status     string    `json:"status"`
	Decision   string    `json:"decision,omitempty"`
	Revoked    []string  `json:"revoked"`
	Reason     string    `json:"reason,omitempty"`
	AttestedBy string    `json:"attested_by,omitempty"`
	AttestedAt time.Time `json:"attested_at,omitzero"`
	OverdueAt  time.Time `json:"overdue_at,omitzero"`
}

// Facts is what the reviewer is asked to judge, as of the campaign's start.
type Facts struct {
	Service     bool        `json:"service"`
	Owner       string      `json:"owner,omitempty"`
	Roles       []RoleFacts `json:"roles"`
	Tools       []string    `json:"tools"` // effective: the tools its roles let it invoke
	Keys        []KeyFacts  `json:"keys"`
	Unused      []string    `json:"unused"`       // grants (role:R, key:K) unused for UnusedAfter
	AdminRights []string    `json:"admin_rights"` // grants beyond discover, invoke, approve and read-audit
	LastCall    time.Time   `json:"last_call,omitzero"`
}

// RoleFacts is one role an identity holds.
type RoleFacts struct {
	Name     string    `json:"name"`
	Grants   []string  `json:"grants"`
	Tools    []string  `json:"tools"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// KeyFacts is one usable API key.
type KeyFacts struct {
	ID          string    `json:"id"`
	Environment string    `json:"environment"`
	CreatedAt   time.Time `json:"created_at"`
	AgeDays     int       `json:"age_days"`
	LastUsedAt  time.Time `json:"last_used_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	Scoped      bool      `json:"scoped"`
}

// Store is the read side.
type Store interface {
	Reviews(ctx context.Context) ([]Campaign, error)
	ReviewByID(ctx context.Context, id string) (Campaign, error)
	ReviewItems(ctx context.Context, review string) ([]Item, error)
	ReviewItem(ctx context.Context, id string) (Item, error)
	// OverdueItems returns pending items of campaigns due at or before
	// now that are not yet marked overdue.
	OverdueItems(ctx context.Context, now time.Time) ([]Item, error)
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	InsertReview(ctx context.Context, c Campaign, items []Item) error
	AttestItem(ctx context.Context, it Item) error
	MarkItemOverdue(ctx context.Context, id string, at time.Time) error
}

// Identities applies revocations (identity.Service).
type Identities interface {
	SetRoles(ctx context.Context, p *authn.Principal, name string, roles []string) (identity.User, error)
	RevokeKey(ctx context.Context, p *authn.Principal, id string) (identity.Key, error)
}

// History reads the audit index.
type History interface {
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
}

// Alerter raises alerts (alert.Service); nil: overdue items are only
// recorded.
type Alerter interface {
	Raise(ctx context.Context, f alert.Finding) (alert.Alert, error)
}

// Config holds the service's dependencies; all but Alerter are required.
type Config struct {
	Store      Store
	Directory  identity.Reader
	Identities Identities
	History    History
	Tools      func() []string // every tool name in the catalog
	Auditor    audit.Appender
	Alerter    Alerter
	Now        func() time.Time
}

// Service runs campaigns.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Directory == nil || cfg.Identities == nil || cfg.History == nil || cfg.Tools == nil || cfg.Auditor == nil || cfg.Now == nil {
		return nil, errors.New("review: missing dependency")
	}
	return &Service{cfg: cfg}, nil
}

// SetAlerter installs what overdue items are alerted through.
func (s *Service) SetAlerter(a Alerter) { s.cfg.Alerter = a }

var (
	nameRE = regexp.MustCompile(`^[\pL\pN][\pL\pN ._-]{0,99}$`)
	idRE   = regexp.MustCompile(`^(rv|ri)_[0-9a-f]{20}$`)
)

// ValidID reports whether id has the form of a campaign (rv_) or item
// (ri_) id.
func ValidID(id string) bool { return idRE.MatchString(id) }

func newID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func txStore(tx audit.Tx) (TxStore, error) {
	ts, ok := tx.(TxStore)
	if !ok {
		return nil, fmt.Errorf("review: store transaction %T lacks review operations", tx)
	}
	return ts, nil
}

func deny(ctx context.Context, a audit.Appender, rec audit.Record, format string, args ...any) error {
	return audit.Refuse(ctx, a, rec, fault.New(fault.Forbidden, format, args...))
}

func invalid(ctx context.Context, a audit.Appender, rec audit.Record, format string, args ...any) error {
	return audit.Refuse(ctx, a, rec, fault.New(fault.Invalid, format, args...))
}

// isReviewer reports whether user reviews c.
func (c Campaign) isReviewer(user string) bool { return slices.Contains(c.Reviewers, user) }

// mayReview reports whether user may attest it: a reviewer who is
// neither the identity nor the owner of that service account.
func (it Item) mayReview(c Campaign, user string) bool {
	return c.isReviewer(user) && user != it.Identity && (it.Facts.Owner == "" || user != it.Facts.Owner)
}

func canRead(p *authn.Principal) bool { return p.Allows(authz.ReadAudit, authz.All) }
