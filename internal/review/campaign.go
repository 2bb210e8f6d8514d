package review

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// StartRequest starts a campaign.
type StartRequest struct {
	Name      string   `json:"name"`
	Scope     string   `json:"scope"` // all (default), role:R or user:U
	Reviewers []string `json:"reviewers"`
	Due       string   `json:"due"` // identity.ParseLifetime syntax: 14d, 72h
}

// MaxReviewers bounds a campaign's reviewers.
const MaxReviewers = 20

// Start creates a campaign: one item per enabled identity in scope. It
// needs manage-identities; every reviewer must be an enabled user, and
// every identity must have a reviewer other than itself (and its owner).
func (s *Service) Start(ctx context.Context, p *authn.Principal, in StartRequest) (Campaign, error) {
	rec := p.Record(EventStart, "review:?")
	if in.Scope == "" {
		in.Scope = "all"
	}
	in.Reviewers = slices.Compact(slices.Sorted(slices.Values(in.Reviewers)))
	rec.Detail = map[string]any{"name": clip(in.Name), "scope": clip(in.Scope), "reviewers": in.Reviewers, "due": clip(in.Due)}
	if !p.Allows(authz.ManageIdentities, authz.All) {
		return Campaign{}, deny(ctx, s.cfg.Auditor, rec, "permission denied: this needs the %s grant", authz.ManageIdentities)
	}
	if !nameRE.MatchString(in.Name) {
		return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "name: 1–100 letters, digits, spaces and . _ -")
	}
	due, err := identity.ParseLifetime(in.Due)
	if err != nil {
		return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "due: %v", err)
	}
	if len(in.Reviewers) == 0 || len(in.Reviewers) > MaxReviewers {
		return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "reviewers: 1 to %d users", MaxReviewers)
	}
	users, err := s.cfg.Directory.ListUsers(ctx)
	if err != nil {
		return Campaign{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	for _, r := range in.Reviewers {
		i := slices.IndexFunc(users, func(u identity.User) bool { return u.Name == r })
		if i < 0 || users[i].Disabled {
			return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "reviewer %q is not an enabled user", clip(r))
		}
	}
	scoped, err := inScope(users, in.Scope)
	if err != nil {
		return Campaign{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
	}
	now := s.cfg.Now().UTC()
	c := Campaign{ID: newID("rv"), Name: in.Name, Scope: in.Scope, Reviewers: in.Reviewers, CreatedBy: p.User, CreatedAt: now, DueAt: now.Add(due)}
	rec.Target = "review:" + c.ID
	rec.Detail["due_at"] = audit.FormatTime(c.DueAt)
	var items []Item
	for _, u := range scoped {
		f, err := s.facts(ctx, u, now)
		if err != nil {
			return Campaign{}, audit.Refuse(ctx, s.cfg.Auditor, rec, err)
		}
		it := Item{ID: newID("ri"), Review: c.ID, Identity: u.Name, Facts: f, Status: Pending, Revoked: []string{}}
		if !slices.ContainsFunc(c.Reviewers, func(r string) bool { return it.mayReview(c, r) }) {
			return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "nobody reviews themselves: %s needs a reviewer other than itself and its owner", u.Name)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return Campaign{}, invalid(ctx, s.cfg.Auditor, rec, "scope %s holds no enabled identity", clip(in.Scope))
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.Identity
	}
	rec.Detail["identities"] = ids
	if _, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, err := txStore(tx)
		if err != nil {
			return err
		}
		return ts.InsertReview(ctx, c, items)
	}}); err != nil {
		return Campaign{}, err
	}
	c.Items, c.Pending = items, len(items)
	return c, nil
}

// inScope picks the enabled users a scope names.
func inScope(users []identity.User, scope string) ([]identity.User, error) {
	kind, name, _ := strings.Cut(scope, ":")
	if scope != "all" && (kind != "role" && kind != "user" || name == "") {
		return nil, fault.New(fault.Invalid, "scope: want all, role:ROLE or user:USER")
	}
	var out []identity.User
	for _, u := range users {
		if u.Disabled {
			continue
		}
		switch {
		case scope == "all",
			kind == "role" && slices.Contains(u.Roles, name),
			kind == "user" && u.Name == name:
			out = append(out, u)
		}
	}
	return out, nil
}

// facts gathers what a reviewer judges of u.
func (s *Service) facts(ctx context.Context, u identity.User, now time.Time) (Facts, error) {
	f := Facts{Service: u.Service, Owner: u.Owner, Roles: []RoleFacts{}, Tools: []string{}, Keys: []KeyFacts{}, Unused: []string{}, AdminRights: []string{}}
	calls, err := s.cfg.History.QueryAudit(ctx, audit.Query{Actor: u.Name, Event: "tool-call", Outcome: audit.Success, Since: now.Add(-UnusedAfter), Limit: audit.MaxLimit})
	if err != nil {
		return f, err
	}
	if len(calls) > 0 {
		f.LastCall = calls[0].Time
	}
	tools := s.cfg.Tools()
	var all authz.Grants
	for _, name := range u.Roles {
		role, err := s.cfg.Directory.RoleByName(ctx, name)
		if err != nil {
			return f, err
		}
		rf := RoleFacts{Name: name, Grants: role.Grants.Strings(), Tools: []string{}}
		for _, t := range tools {
			if role.Grants.Allows(authz.Invoke, t) {
				rf.Tools = append(rf.Tools, t)
			}
		}
		for _, c := range calls { // newest first
			if role.Grants.Allows(authz.Invoke, strings.TrimPrefix(c.Target, "tool:")) {
				rf.LastUsed = c.Time
				break
			}
		}
		if rf.LastUsed.IsZero() {
			f.Unused = append(f.Unused, "role:"+name)
		}
		all = append(all, role.Grants...)
		f.Roles = append(f.Roles, rf)
	}
	for _, t := range tools {
		if all.Allows(authz.Invoke, t) {
			f.Tools = append(f.Tools, t)
		}
	}
	for _, g := range all {
		switch g.Action {
		case authz.Discover, authz.Invoke, authz.Approve, authz.ReadAudit:
		default:
			f.AdminRights = append(f.AdminRights, g.String())
		}
	}
	f.AdminRights = slices.Compact(slices.Sorted(slices.Values(f.AdminRights)))
	keys, err := s.cfg.Directory.ListKeys(ctx, u.Name)
	if err != nil {
		return f, err
	}
	for _, k := range keys {
		if !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now)) {
			continue
		}
		f.Keys = append(f.Keys, KeyFacts{ID: k.ID, Environment: k.Environment, CreatedAt: k.CreatedAt, AgeDays: int(now.Sub(k.CreatedAt) / (24 * time.Hour)),
			LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, Scoped: k.Scope != nil})
		if k.LastUsedAt.IsZero() || now.Sub(k.LastUsedAt) > UnusedAfter {
			f.Unused = append(f.Unused, "key:"+k.ID)
		}
	}
	return f, nil
}
