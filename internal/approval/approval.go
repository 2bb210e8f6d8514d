// Package approval holds calls the policy wants approved. A request is
// bound to its requester, the exact tool version and the canonical
// arguments; distinct people vote on it (never the requester); once
// approved, exactly one identical call by the same requester uses it,
// before it expires, unless someone denies it first (deny wins, even
// after approval). Every step is an audit record committed with the
// change it describes. See DESIGN.md in package policy.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
)

// Status of an approval request.
type Status string

const (
	Pending  Status = "pending"
	Approved Status = "approved"
	Denied   Status = "denied"
	Expired  Status = "expired"
	Used     Status = "used"
)

// Audit event types.
const (
	EventRequested = "approval-requested"
	EventDecided   = "approval-decided" // one vote; the record says whether it settled the request
	EventExpired   = "approval-expired"
	EventUsed      = "approval-used"
	EventList      = "approval-list"
)

// Notifications of a Notifier.
const (
	NotifyRequested = "approval.requested"
	NotifyDecided   = "approval.decided"
	NotifyExpired   = "approval.expired"
)

// Notifier hears of requests opened, votes cast and requests expired
// (webhook.Dispatcher). It must not block.
type Notifier interface {
	Notify(event string, a Approval)
}

// Approval is one request and its votes.
type Approval struct {
	ID          string          `json:"id"`
	Status      Status          `json:"status"`
	Requester   string          `json:"requester"`
	Owner       string          `json:"requester_owner,omitempty"` // who owns the requesting service account
	KeyID       string          `json:"key_id"`
	Tool        string          `json:"tool"`
	Upstream    string          `json:"upstream"`
	ToolVersion int             `json:"tool_version"`
	ToolDigest  string          `json:"tool_digest"`
	ArgsSHA256  string          `json:"args_sha256"` // of Args
	Args        json.RawMessage `json:"args"`        // RFC 8785 canonical (a JSON encoder may re-escape it on the way)
	ArgsBytes   int             `json:"args_bytes"`  // len(Args) as stored and hashed
	Decision    policy.Decision `json:"decision"`
	RequestID   string          `json:"request_id"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	DecidedAt   time.Time       `json:"decided_at,omitzero"`
	UsedAt      time.Time       `json:"used_at,omitzero"`
	Votes       []Vote          `json:"votes"`
}

// Vote is one person's decision on a request.
type Vote struct {
	Approver string    `json:"approver"`
	Roles    []string  `json:"roles"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Call identifies a call exactly: who, which tool version, which arguments.
type Call struct {
	Requester  string
	Tool       string
	ToolDigest string
	ArgsSHA256 string
}

// Needs lists what the request requires, as text ("2 approver(s) with
// role finance-lead").
func (a *Approval) Needs() []string {
	out := make([]string, 0, len(a.Decision.Requires))
	for _, r := range a.Decision.Requires {
		n := fmt.Sprintf("%d approver(s)", max(r.Approvers, 1))
		if r.Role != "" {
			n += " with role " + r.Role
		}
		out = append(out, n)
	}
	return out
}

// Tally lists the votes as "+carol" (approve) and "-dave" (deny).
func (a *Approval) Tally() []string {
	out := make([]string, 0, len(a.Votes))
	for _, v := range a.Votes {
		mark := "+"
		if !v.Approve {
			mark = "-"
		}
		out = append(out, mark+v.Approver)
	}
	return out
}

func (a *Approval) call() Call { return Call{a.Requester, a.Tool, a.ToolDigest, a.ArgsSHA256} }

// Store is the read side.
type Store interface {
	Approval(ctx context.Context, id string) (Approval, error)  // with votes; fault.NotFound
	Approvals(ctx context.Context, q Query) ([]Approval, error) // newest first
	// FindApproval returns the newest request for c in status.
	FindApproval(ctx context.Context, c Call, status Status) (Approval, error)
	DueApprovals(ctx context.Context, now time.Time) ([]Approval, error) // pending or approved (unused), and expired by now
}

// Query selects requests; zero fields select everything.
type Query struct {
	Status       Status
	Requester    string
	Since, Until time.Time // created in [Since, Until)
	Limit        int       // required
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	InsertApproval(ctx context.Context, a Approval) error
	InsertVote(ctx context.Context, id string, v Vote) error // fault.Conflict if this approver voted
	// SetApprovalStatus moves a request from one status to another, and
	// fails with fault.Conflict if it is no longer in from.
	SetApprovalStatus(ctx context.Context, id string, from, to Status, at time.Time) error
}

// Service keeps approval requests.
type Service struct {
	store Store
	audit audit.Appender
	now   func() time.Time

	mu         sync.Mutex
	waiters    map[string][]chan struct{}
	notify     Notifier
	maxPending int
	settled    func(approved bool, took time.Duration)
}

// SetSettled installs what is told, for metrics, of every request that
// votes approved or denied, and how long after it was opened.
func (s *Service) SetSettled(f func(approved bool, took time.Duration)) { s.settled = f }

// DefaultMaxPending is how many pending requests one user may have open.
const DefaultMaxPending = 20

// SetMaxPending bounds the pending requests one user may have open at
// once (n ≤ 0: DefaultMaxPending).
func (s *Service) SetMaxPending(n int) {
	if n <= 0 {
		n = DefaultMaxPending
	}
	s.maxPending = n
}

// PendingCapError refuses a request of a user who already has the most
// pending requests allowed.
type PendingCapError struct{ Max int }

func (e *PendingCapError) Error() string {
	return fmt.Sprintf("you already have %d approval requests pending, the most allowed; wait for one to be decided or to expire", e.Max)
}

// Unwrap makes it a fault of kind Conflict (recorded as such).
func (e *PendingCapError) Unwrap() error { return fault.New(fault.Conflict, "%s", e.Error()) }

// SetNotifier makes n hear of every request, vote and expiry.
func (s *Service) SetNotifier(n Notifier) { s.notify = n }

func (s *Service) tell(event string, a Approval) {
	if s.notify != nil {
		s.notify.Notify(event, a)
	}
}

// New returns a Service.
func New(store Store, a audit.Appender, now func() time.Time) (*Service, error) {
	if store == nil || a == nil || now == nil {
		return nil, errors.New("approval: missing dependency")
	}
	return &Service{store: store, audit: a, now: now, waiters: map[string][]chan struct{}{}, maxPending: DefaultMaxPending}, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID mints an approval id: "apr_" and 128 bits from crypto/rand as 26
// lower-case base32 letters. Ids name requests in URLs, webhooks and tool
// results; at 128 bits nobody guesses or collides with one.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return "apr_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// ValidID reports whether id looks like an approval id: 26 letters (128
// bits), or 16 (the 80-bit ids of earlier versions, still stored).
func ValidID(id string) bool {
	if len(id) != 4+26 && len(id) != 4+16 || !strings.HasPrefix(id, "apr_") {
		return false
	}
	for _, c := range id[4:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func txStore(tx audit.Tx) (TxStore, error) {
	ts, ok := tx.(TxStore)
	if !ok {
		return nil, fmt.Errorf("approval: store transaction %T lacks approval operations", tx)
	}
	return ts, nil
}

// Request holds a call: it returns the pending request for exactly this
// call if there is one, else records a new one.
func (s *Service) Request(ctx context.Context, a Approval) (Approval, bool, error) {
	if prev, err := s.store.FindApproval(ctx, a.call(), Pending); err == nil && s.now().Before(prev.ExpiresAt) {
		return prev, false, nil
	} else if err != nil && !fault.Is(err, fault.NotFound) {
		return Approval{}, false, err
	}
	now := s.now().UTC()
	a.ID, a.Status, a.CreatedAt, a.Votes, a.ArgsBytes = newID(), Pending, now, []Vote{}, len(a.Args)
	a.ExpiresAt = now.Add(a.Decision.Expires)
	rec := audit.Record{Event: EventRequested, Outcome: audit.Success, Actor: a.Requester, KeyID: a.KeyID, RequestID: a.RequestID,
		Target: "approval:" + a.ID, Detail: map[string]any{"tool": a.Tool, "requester_owner": a.Owner, "tool_version": a.ToolVersion, "tool_digest": a.ToolDigest,
			"args_sha256": a.ArgsSHA256, "args_bytes": a.ArgsBytes, "risk_score": a.Decision.Score, "reasons": a.Decision.Reasons, "policy_version": a.Decision.Policy,
			"requires": requiresDetail(a.Decision.Requires), "expires_at": a.ExpiresAt.Format(time.RFC3339)}}
	_, err := s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		// Counted in the writer's transaction, so concurrent requests of
		// one user cannot slip past the cap together.
		open, err := ts.Approvals(ctx, Query{Status: Pending, Requester: a.Requester, Limit: s.maxPending + 1})
		if err != nil {
			return err
		}
		live := 0
		for _, o := range open {
			if now.Before(o.ExpiresAt) {
				live++
			}
		}
		if live >= s.maxPending {
			return &PendingCapError{Max: s.maxPending}
		}
		return ts.InsertApproval(ctx, a)
	}})
	if err != nil {
		return Approval{}, false, err
	}
	s.tell(NotifyRequested, a)
	return a, true, nil
}

func requiresDetail(rs []policy.Requirement) []any {
	out := make([]any, 0, len(rs))
	for _, r := range rs {
		out = append(out, map[string]any{"approvers": r.Approvers, "role": r.Role, "reason": r.Reason})
	}
	return out
}

// Claim uses the approved request for exactly call c, once: it returns it
// if there was one (and it is now used, on record), else ok is false.
func (s *Service) Claim(ctx context.Context, c Call, keyID, requestID string) (Approval, bool, error) {
	a, err := s.store.FindApproval(ctx, c, Approved)
	if fault.Is(err, fault.NotFound) {
		return Approval{}, false, nil
	}
	if err != nil {
		return Approval{}, false, err
	}
	now := s.now().UTC()
	if !now.Before(a.ExpiresAt) {
		return Approval{}, false, nil // expired: the sweeper records it
	}
	rec := audit.Record{Event: EventUsed, Outcome: audit.Success, Actor: c.Requester, KeyID: keyID, RequestID: requestID,
		Target: "approval:" + a.ID, Detail: map[string]any{"tool": c.Tool, "tool_digest": c.ToolDigest, "args_sha256": c.ArgsSHA256}}
	_, err = s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		return ts.SetApprovalStatus(ctx, a.ID, Approved, Used, now) // a concurrent claim loses here
	}})
	if fault.Is(err, fault.Conflict) {
		return Approval{}, false, nil
	}
	if err != nil {
		return Approval{}, false, err
	}
	a.Status, a.UsedAt = Used, now
	return a, true, nil
}

// MaxReason bounds a vote's reason.
const MaxReason = 1000

// Decide records p's vote on request id (approve or deny, with a reason).
// The requester can never vote on their own request (through any key),
// nor can the owner of a requesting service account; a service account
// never votes, and an approver needs the approve grant on the tool. A
// deny settles the request; approvals settle it once every requirement
// has its count of distinct qualifying approvers. Deny wins: a deny on an
// approved request its call has not used yet voids it (approved →
// denied), so a deny racing the last approval, or the call's claim, either
// lands first and the call never runs, or finds it used and is refused.
func (s *Service) Decide(ctx context.Context, p *authn.Principal, id string, approve bool, reason string) (Approval, error) {
	rec := p.Record(EventDecided, "approval:"+id)
	rec.Detail = map[string]any{"approve": approve, "reason": reason}
	reason = strings.TrimSpace(reason)
	switch {
	case !ValidID(id):
		rec.Target, rec.Detail["reason"] = "approval:?", ""
		return Approval{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%q is not an approval id", clip(id)))
	case reason == "":
		return Approval{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "a reason is required"))
	case len(reason) > MaxReason:
		rec.Detail["reason"] = clip(reason)
		return Approval{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "a reason is at most %d bytes", MaxReason))
	}
	var a Approval
	var settled Status
	_, err := s.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		if a, err = ts.Approval(ctx, id); err != nil {
			return err
		}
		r.Detail["tool"], r.Detail["requester"] = a.Tool, a.Requester
		now := s.now().UTC()
		switch {
		case !p.Allows(authz.Approve, a.Tool):
			return fault.New(fault.Forbidden, "permission denied: deciding on %s needs the approve grant on it", a.Tool)
		case p.User == a.Requester:
			return fault.New(fault.Forbidden, "segregation of duties: nobody decides on their own request")
		case a.Owner != "" && p.User == a.Owner:
			return fault.New(fault.Forbidden, "segregation of duties: nobody decides on a request of a service account they own")
		case p.Service:
			return fault.New(fault.Forbidden, "segregation of duties: service accounts do not decide on approvals")
		case a.Status == Approved && !approve:
			// A deny that lands after the approving vote, before the call
			// used the approval, voids it: deny wins (below, conditionally
			// on approved, so a concurrent claim and this deny cannot both win).
		case a.Status != Pending:
			return fault.New(fault.Conflict, "approval %s is %s, not pending", id, a.Status)
		case !now.Before(a.ExpiresAt):
			return fault.New(fault.Conflict, "approval %s has expired", id)
		}
		v := Vote{Approver: p.User, Roles: slices.Clone(p.Roles), Approve: approve, Reason: reason, At: now}
		if v.Roles == nil {
			v.Roles = []string{}
		}
		if err := ts.InsertVote(ctx, id, v); err != nil {
			return err
		}
		a.Votes = append(a.Votes, v)
		switch {
		case !approve:
			settled = Denied
		case satisfied(a.Decision.Requires, a.Votes):
			settled = Approved
		}
		if settled != "" {
			if a.Status == Approved {
				r.Detail["voided"] = true // approved, not yet used: now denied
			}
			if err := ts.SetApprovalStatus(ctx, id, a.Status, settled, now); err != nil {
				if fault.Is(err, fault.Conflict) {
					return fault.New(fault.Conflict, "approval %s was settled or used meanwhile", id)
				}
				return err
			}
			a.Status, a.DecidedAt = settled, now
			r.Detail["settled"] = string(settled)
		}
		return nil
	}})
	if err != nil {
		return Approval{}, err
	}
	if settled != "" {
		s.wake(id)
		if s.settled != nil {
			s.settled(settled == Approved, a.DecidedAt.Sub(a.CreatedAt))
		}
	}
	s.tell(NotifyDecided, a)
	return a, nil
}

// satisfied reports whether the approving votes meet every requirement:
// Approvers distinct people, holding Role if one is named.
func satisfied(reqs []policy.Requirement, votes []Vote) bool {
	for _, r := range reqs {
		n := 0
		for _, v := range votes {
			if v.Approve && (r.Role == "" || slices.Contains(v.Roles, r.Role)) {
				n++
			}
		}
		if n < max(r.Approvers, 1) {
			return false
		}
	}
	return true
}

// Wait returns a channel closed when request id is settled (approved,
// denied or expired), and a function to stop waiting.
func (s *Service) Wait(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		ws := s.waiters[id]
		if i := slices.Index(ws, ch); i >= 0 {
			s.waiters[id] = slices.Delete(ws, i, i+1)
		}
		if len(s.waiters[id]) == 0 {
			delete(s.waiters, id)
		}
	}
}

func (s *Service) wake(id string) {
	s.mu.Lock()
	ws := s.waiters[id]
	delete(s.waiters, id)
	s.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// Expire settles every request past its expiry that is still pending or
// approved but unused, each on record.
func (s *Service) Expire(ctx context.Context) error {
	now := s.now().UTC()
	rec := audit.Record{Event: EventExpired, Outcome: audit.Success, Actor: "system"}
	// Each expiry is its own audited transaction, which fails with
	// fault.Conflict if the request was settled meanwhile.
	due, err := s.store.DueApprovals(ctx, now)
	if err != nil {
		return err
	}
	for _, a := range due {
		r := rec
		r.Target, r.RequestID = "approval:"+a.ID, a.RequestID
		r.Detail = map[string]any{"tool": a.Tool, "requester": a.Requester, "votes": len(a.Votes), "was": string(a.Status)}
		_, err := s.audit.Write(ctx, audit.Entry{Record: r, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			ts, err := txStore(tx)
			if err != nil {
				return err
			}
			return ts.SetApprovalStatus(ctx, a.ID, a.Status, Expired, now)
		}})
		if err != nil && !fault.Is(err, fault.Conflict) { // decided meanwhile: not expired
			return err
		}
		if err == nil {
			s.wake(a.ID)
			a.Status = Expired
			s.tell(NotifyExpired, a)
		}
	}
	return nil
}

// Run expires requests every interval until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration, log func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Expire(ctx); err != nil && ctx.Err() == nil {
				log(err)
			}
		}
	}
}

// List returns requests (newest first; status empty: all). Approvers see
// the requests on tools they may approve; auditors all; anyone their own.
func (s *Service) List(ctx context.Context, p *authn.Principal, status Status, limit int) ([]Approval, error) {
	rec := p.Record(EventList, "")
	rec.Detail = map[string]any{"status": string(status)}
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	return audit.Read(ctx, s.audit, rec, func() ([]Approval, error) {
		all, err := s.store.Approvals(ctx, Query{Status: status, Limit: limit})
		out := []Approval{}
		for _, a := range all {
			if visible(p, a) {
				out = append(out, a)
			}
		}
		return out, err
	})
}

func visible(p *authn.Principal, a Approval) bool {
	return a.Requester == p.User || p.Allows(authz.Approve, a.Tool) || p.Allows(authz.ReadAudit, authz.All)
}

// Show returns one request, if p may see it (else: not found).
func (s *Service) Show(ctx context.Context, p *authn.Principal, id string) (Approval, error) {
	rec := p.Record(EventList, "approval:"+id)
	if !ValidID(id) {
		rec.Target = "approval:?"
		return Approval{}, audit.Refuse(ctx, s.audit, rec, fault.New(fault.Invalid, "%q is not an approval id", clip(id)))
	}
	return audit.Read(ctx, s.audit, rec, func() (Approval, error) {
		a, err := s.store.Approval(ctx, id)
		if err == nil && !visible(p, a) {
			return Approval{}, fault.New(fault.NotFound, "approval %s does not exist", id)
		}
		return a, err
	})
}

// Mine returns user's own requests: the one with id (none if it is not
// theirs), or their 20 most recent. Reading one's own requests is the
// approval_status tool's call, recorded by the gateway.
func (s *Service) Mine(ctx context.Context, user, id string) ([]Approval, error) {
	if id == "" {
		return s.store.Approvals(ctx, Query{Requester: user, Limit: 20})
	}
	a, err := s.store.Approval(ctx, id)
	if fault.Is(err, fault.NotFound) || err == nil && a.Requester != user {
		return []Approval{}, nil
	}
	if err != nil {
		return nil, err
	}
	return []Approval{a}, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
