package change

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
)

// MaxReason bounds a reason's length.
const MaxReason = 1000

// checkReason refuses an empty, overlong or control-character reason.
func checkReason(what, s string) error {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return fault.New(fault.Invalid, "%s is required (--reason)", what)
	case len(s) > MaxReason:
		return fault.New(fault.Invalid, "%s: at most %d bytes", what, MaxReason)
	case !validText(s):
		return fault.New(fault.Invalid, "%s: printable UTF-8 text only", what)
	}
	return nil
}

func validText(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || (unicode.IsControl(r) && r != '\n' && r != '\t') {
			return false
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD") == s
}

// Propose records a proposal for r (its author is p), with its diff and
// gates. Nothing changes until it is approved.
func (s *Service) Propose(ctx context.Context, p *authn.Principal, r Request) (Proposal, error) {
	pr := Proposal{ID: newID(), Kind: r.Kind, Object: object(r), State: Open, Author: p.User, AuthorKey: p.KeyID, AuthorOwner: p.Owner,
		Reason: strings.TrimSpace(r.Reason), CreatedAt: s.cfg.Now().UTC(), Change: r, Quorum: s.cfg.Quorum, Votes: []Vote{}, Gates: []Gate{}}
	rec := p.Record(EventCreated, "proposal:"+pr.ID)
	rec.Detail = map[string]any{"kind": string(r.Kind), "object": clip(pr.Object, 200), "rollback": r.Rollback}
	if !slices.Contains(Kinds, r.Kind) {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "kind: want policy, tool-version, tool-labels or user-roles"))
	}
	if r.Kind == KindUserRoles && r.User == "" {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "a user-roles proposal names a user"))
	}
	if (r.Kind == KindToolVersion || r.Kind == KindToolLabels) && r.Tool == "" {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "a %s proposal names a tool", r.Kind))
	}
	act, res := need(r)
	if !p.Allows(act, res) {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs %s:%s", act, clip(res, 200)))
	}
	if err := checkReason("a reason", r.Reason); err != nil {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	if err := s.prepare(ctx, p, &pr); err != nil {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	pr.DiffSHA256 = sha(pr.Diff)
	if pr.FastPath {
		pr.Quorum = 1
		pr.Gates = []Gate{{Name: "fast-path", Passed: true, Summary: "a rollback to a version reviewed in " + pr.FastPathOf + ": one reviewer, no gates"}}
	}
	rec.Detail["base"], rec.Detail["diff_sha256"], rec.Detail["gates"], rec.Detail["quorum"], rec.Detail["fast_path"] =
		pr.Base, pr.DiffSHA256, gateDetail(pr.Gates), pr.Quorum, pr.FastPath
	rec.Detail["reason"] = clip(pr.Reason, 200)
	_, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		pr.Seq = r.Seq
		return ts.InsertProposal(ctx, pr)
	}})
	return pr, err
}

func gateDetail(gs []Gate) map[string]any {
	out := map[string]any{}
	for _, g := range gs {
		out[g.Name] = map[string]any{"passed": g.Passed, "summary": clip(g.Summary, 300)}
	}
	return out
}

// Verdict is a reviewer's decision on a proposal.
type Verdict struct {
	Approve bool
	Reason  string
	// Override accepts failing gates, with why (approvals only).
	Override string
}

// Review approves or rejects proposal id. The reviewer must hold the
// change's grant, be a person and not its author (through any key);
// approving past failing gates takes an override reason. The approval
// that reaches the quorum applies the change in its record's transaction,
// if the object is still at the proposal's base; otherwise the proposal
// is superseded and the change refused.
func (s *Service) Review(ctx context.Context, p *authn.Principal, id string, v Verdict) (Proposal, error) {
	ev := EventApproved
	if !v.Approve {
		ev = EventRejected
	}
	rec := p.Record(ev, "proposal:"+clip(id, 64))
	rec.Detail = map[string]any{"reason": clip(strings.TrimSpace(v.Reason), 200)}
	pr, err := s.cfg.Store.Proposal(ctx, id)
	if err != nil {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	rec.Detail["kind"], rec.Detail["object"] = string(pr.Kind), pr.Object
	act, res := need(pr.Change)
	switch {
	case !p.Allows(act, res):
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: reviewing this needs %s:%s", act, clip(res, 200)))
	case p.Service:
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "a service account cannot review changes"))
	case p.User == pr.Author:
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "the author of a proposal cannot review it, with any of their keys (withdraw it instead)"))
	}
	if err := s.notTheAuthors(ctx, p, pr); err != nil {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	if err := checkReason("a reason", v.Reason); err != nil {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	if v.Override != "" {
		if !v.Approve {
			return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "an override is for an approval"))
		}
		if err := checkReason("an override reason", v.Override); err != nil {
			return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
		}
		rec.Detail["override"] = clip(strings.TrimSpace(v.Override), 200)
	}
	var after func(context.Context) error
	var out Proposal
	_, err = s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		cur, err := ts.Proposal(ctx, id)
		if err != nil {
			return err
		}
		if err := mayVote(&cur, p.User, v); err != nil {
			return err
		}
		if v.Approve {
			if err := authorStands(ctx, tx, &cur); err != nil {
				return err
			}
		}
		if !cur.FastPath && s.cfg.Quorum > cur.Quorum { // raised since it was proposed: the stricter holds
			cur.Quorum = s.cfg.Quorum
		}
		cur.Votes = append(cur.Votes, Vote{Reviewer: p.User, KeyID: p.KeyID, Approve: v.Approve, Reason: strings.TrimSpace(v.Reason),
			Override: strings.TrimSpace(v.Override), At: s.cfg.Now().UTC(), Seq: r.Seq})
		counted := cur.Reviewers()
		if !v.Approve {
			cur.State, cur.ClosedAt, cur.ClosedBy, cur.CloseNote = Rejected, s.cfg.Now().UTC(), p.User, strings.TrimSpace(v.Reason)
		} else {
			var dropped []string
			if counted, dropped, err = s.counted(ctx, tx, &cur, p.User); err != nil {
				return err
			}
			if len(dropped) > 0 {
				r.Detail["approvals_not_counted"] = dropped // disabled, revoked or without the grant since
			}
		}
		if v.Approve && len(counted) >= cur.Quorum {
			if after, err = s.apply(ctx, tx, r, p, &cur); err != nil {
				return err
			}
			cur.State, cur.ClosedAt, cur.ClosedBy, cur.AppliedAt = Applied, s.cfg.Now().UTC(), p.User, r.Seq
			r.Event = EventApplied
			if err := s.supersedeOthers(ctx, ts, r, cur); err != nil {
				return err
			}
			versionDetail(r, cur, counted)
		}
		r.Detail["approvals"], r.Detail["quorum"] = len(counted), cur.Quorum
		out = cur
		return ts.UpdateProposal(ctx, cur)
	}})
	var stale *policy.StaleError
	if errors.As(err, &stale) {
		return Proposal{}, s.supersede(ctx, p, pr, stale)
	}
	if err != nil {
		return Proposal{}, err
	}
	if after != nil {
		if err := after(ctx); err != nil {
			return out, fmt.Errorf("change: applied, but not yet in force here (a restart puts it in force): %w", err)
		}
	}
	return out, nil
}

// mayVote checks, inside the transaction, that user may vote v on pr now.
func mayVote(pr *Proposal, user string, v Verdict) error {
	if pr.State != Open {
		return fault.New(fault.Conflict, "proposal %s is %s", pr.ID, pr.State)
	}
	for _, x := range pr.Votes {
		if x.Reviewer == user {
			return fault.New(fault.Conflict, "%s has already reviewed proposal %s: a second approval must come from another reviewer", user, pr.ID)
		}
	}
	if v.Approve && !pr.GatesPassed() && v.Override == "" {
		var failed []string
		for _, g := range pr.Gates {
			if !g.Passed {
				failed = append(failed, g.Name+": "+g.Summary)
			}
		}
		return fault.New(fault.Conflict, "proposal %s failed its gates (%s): approve with an override reason (--override) to accept them",
			pr.ID, clip(strings.Join(failed, "; "), 600))
	}
	return nil
}

// versionDetail puts what version_log reads on the applying record.
func versionDetail(r *audit.Record, pr Proposal, reviewers []string) {
	r.Detail["proposal"], r.Detail["result"], r.Detail["base"] = pr.ID, pr.Result, pr.Base
	r.Detail["author"], r.Detail["author_key"], r.Detail["author_reason"] = pr.Author, pr.AuthorKey, clip(pr.Reason, 200)
	r.Detail["reviewers"], r.Detail["diff_sha256"], r.Detail["gates"] = reviewers, pr.DiffSHA256, gateDetail(pr.Gates)
	r.Detail["fast_path"], r.Detail["proposal_seq"] = pr.FastPath, pr.Seq
	var seqs, overrides []any
	for _, v := range pr.Votes {
		seqs = append(seqs, v.Seq)
		if v.Override != "" {
			overrides = append(overrides, v.Reviewer+": "+clip(v.Override, 200))
		}
	}
	r.Detail["vote_seqs"] = seqs
	if len(overrides) > 0 {
		r.Detail["overrides"] = overrides
	}
}

// supersedeOthers closes the other open proposals of the object: they were
// made against the version just replaced.
func (s *Service) supersedeOthers(ctx context.Context, ts TxStore, r *audit.Record, applied Proposal) error {
	open, err := ts.Proposals(ctx, Query{State: Open, Object: applied.Object})
	if err != nil {
		return err
	}
	var ids []any
	for _, o := range open {
		if o.ID == applied.ID {
			continue
		}
		o.State, o.ClosedAt, o.CloseNote = Superseded, s.cfg.Now().UTC(), "superseded by "+applied.ID
		if err := ts.UpdateProposal(ctx, o); err != nil {
			return err
		}
		ids = append(ids, o.ID)
	}
	if len(ids) > 0 {
		r.Detail["superseded"] = ids
	}
	return nil
}

// supersede closes pr as stale (the object moved on since it was made),
// on record, and returns the refusal.
func (s *Service) supersede(ctx context.Context, p *authn.Principal, pr Proposal, stale *policy.StaleError) error {
	rec := p.Record(EventSuperseded, "proposal:"+pr.ID)
	rec.Detail = map[string]any{"object": pr.Object, "base": pr.Base, "now": clip(stale.Now, 100)}
	_, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		cur, err := ts.Proposal(ctx, pr.ID)
		if err != nil || cur.State != Open {
			return err
		}
		cur.State, cur.ClosedAt, cur.CloseNote = Superseded, s.cfg.Now().UTC(), stale.Error()
		return ts.UpdateProposal(ctx, cur)
	}})
	if err != nil {
		return err
	}
	return fault.New(fault.Conflict, "proposal %s is stale and now superseded: %s; propose the change again against the current version", pr.ID, stale.Error())
}

// Withdraw closes the author's own open proposal.
func (s *Service) Withdraw(ctx context.Context, p *authn.Principal, id, reason string) (Proposal, error) {
	rec := p.Record(EventWithdrawn, "proposal:"+clip(id, 64))
	pr, err := s.cfg.Store.Proposal(ctx, id)
	if err != nil {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	if pr.Author != p.User {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "only the author of a proposal can withdraw it (a reviewer rejects it)"))
	}
	rec.Detail = map[string]any{"reason": clip(strings.ToValidUTF8(strings.TrimSpace(reason), "?"), 200)}
	if strings.TrimSpace(reason) != "" { // optional, but held to what every other reason is
		if err := checkReason("a reason", reason); err != nil {
			return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
		}
	}
	var out Proposal
	_, err = s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		cur, err := ts.Proposal(ctx, id)
		if err != nil {
			return err
		}
		if cur.State != Open {
			return fault.New(fault.Conflict, "proposal %s is %s", id, cur.State)
		}
		cur.State, cur.ClosedAt, cur.ClosedBy, cur.CloseNote = Withdrawn, s.cfg.Now().UTC(), p.User, strings.TrimSpace(reason)
		out = cur
		return ts.UpdateProposal(ctx, cur)
	}})
	return out, err
}

// mayRead: those who may propose or review something, and auditors.
func mayRead(p *authn.Principal) bool {
	return p.Allows(authz.ReadAudit, authz.All) || p.Allows(authz.ManagePolicy, authz.All) || p.Allows(authz.ManageTools, authz.All) ||
		p.Allows(authz.ManageIdentities, authz.All) // who reviews users' roles must see the diff they approve
}

// List lists proposals, newest first.
func (s *Service) List(ctx context.Context, p *authn.Principal, q Query) ([]Proposal, error) {
	rec := p.Record(EventRead, "")
	rec.Detail = map[string]any{"what": "list", "state": string(q.State)}
	if !mayRead(p) {
		return nil, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs manage-policy, manage-tools, manage-identities or read-audit"))
	}
	switch q.State {
	case "", Open, Applied, Rejected, Withdrawn, Superseded:
	default:
		return nil, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "state: open, applied, rejected, withdrawn or superseded"))
	}
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 100
	}
	return audit.Read(ctx, s.cfg.Auditor, rec, func() ([]Proposal, error) { return s.cfg.Store.Proposals(ctx, q) })
}

// Show returns one proposal.
func (s *Service) Show(ctx context.Context, p *authn.Principal, id string) (Proposal, error) {
	rec := p.Record(EventRead, "proposal:"+clip(id, 64))
	rec.Detail = map[string]any{"what": "show"}
	if !mayRead(p) {
		return Proposal{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs manage-policy, manage-tools, manage-identities or read-audit"))
	}
	return audit.Read(ctx, s.cfg.Auditor, rec, func() (Proposal, error) { return s.cfg.Store.Proposal(ctx, id) })
}
