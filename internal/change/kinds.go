package change

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/policy"
)

// need is the grant that proposing and reviewing a change of r takes.
func need(r Request) (authz.Action, string) {
	switch r.Kind {
	case KindPolicy:
		return authz.ManagePolicy, authz.All
	case KindUserRoles:
		return authz.ManageIdentities, authz.All
	}
	return authz.ManageTools, r.Tool
}

// object names what r changes.
func object(r Request) string {
	switch r.Kind {
	case KindPolicy:
		return "policy"
	case KindUserRoles:
		return "user:" + r.User
	}
	return "tool:" + r.Tool
}

// prepare fills in the proposal's base, diff and gates for its change.
func (s *Service) prepare(ctx context.Context, p *authn.Principal, pr *Proposal) error {
	switch pr.Kind {
	case KindPolicy:
		return s.preparePolicy(ctx, pr)
	case KindToolVersion:
		return s.prepareToolVersion(ctx, pr)
	case KindToolLabels:
		return s.prepareLabels(ctx, pr)
	case KindUserRoles:
		return s.prepareRoles(ctx, p, pr)
	}
	return fault.New(fault.Invalid, "kind: want policy, tool-version, tool-labels or user-roles")
}

func (s *Service) preparePolicy(ctx context.Context, pr *Proposal) error {
	r := &pr.Change
	if r.Tool != "" || r.Labels != nil {
		return fault.New(fault.Invalid, "a policy proposal takes a source (or a rollback version), not a tool or labels")
	}
	if r.Rollback {
		if r.Version <= 0 {
			return fault.New(fault.Invalid, "a policy rollback names a positive version")
		}
		old, err := s.cfg.Policy.Stored(ctx, r.Version)
		if err != nil {
			return err
		}
		r.Source = old.Source
		id, err := s.cfg.Store.ReviewedVersion(ctx, "policy", strconv.Itoa(r.Version))
		if err != nil {
			return err
		}
		pr.FastPath, pr.FastPathOf = id != "", id
	} else if r.Version != 0 {
		return fault.New(fault.Invalid, "version is for a rollback")
	}
	proposed, results, err := policy.Check([]byte(r.Source))
	if err != nil {
		return err
	}
	cur, err := s.cfg.Policy.Stored(ctx, 0)
	if err != nil {
		return err
	}
	if sha(cur.Source) == sha(r.Source) {
		return fault.New(fault.Conflict, "this policy is the one in force (version %d): nothing to propose", cur.Version)
	}
	pr.Base = strconv.Itoa(cur.Version)
	pr.Diff = LineDiff(cur.Source, r.Source)
	if before, err := policy.Parse([]byte(cur.Source)); err == nil {
		pr.Summary = RuleDiff(before, proposed)
	} else {
		pr.Summary = []string{"the policy in force does not compile: every rule is new"}
	}
	if pr.FastPath {
		return nil
	}
	if before, err := policy.Parse([]byte(cur.Source)); err == nil {
		results = append(results, inForceTests(before, proposed)...)
	}
	pr.Gates = append(pr.Gates, testsGate(results))
	rep, err := s.replay(ctx, proposed)
	if err != nil {
		return err
	}
	g := Gate{Name: "replay", Passed: rep.Loosened == 0, Summary: rep.Summary(), Report: rep}
	if rep.Loosened > 0 {
		g.Summary = fmt.Sprintf("%d recorded decisions would become less strict; %s", rep.Loosened, g.Summary)
	}
	pr.Gates = append(pr.Gates, g)
	return nil
}

// RollbackTarget is the version a rollback of a tool in state st puts
// back: to, which must have been active once, or (0) the one active
// before the current one.
func RollbackTarget(st catalog.ToolState, to int) (int, error) {
	var best *catalog.Version
	for i := range st.Versions {
		v := &st.Versions[i]
		if to != 0 && v.Version == to {
			if v.ActivatedAt.IsZero() {
				return 0, fault.New(fault.Invalid, "version %d of %s was never active: activate it (reviewed) rather than roll back to it", to, st.Tool)
			}
			if v.Status == catalog.Active {
				return 0, fault.New(fault.Conflict, "version %d of %s is the active one", to, st.Tool)
			}
			return to, nil
		}
		if to == 0 && v.Status != catalog.Active && !v.ActivatedAt.IsZero() && (best == nil || v.ActivatedAt.After(best.ActivatedAt)) {
			best = v
		}
	}
	if to != 0 {
		return 0, fault.New(fault.NotFound, "tool %s has no version %d", st.Tool, to)
	}
	if best == nil {
		return 0, fault.New(fault.NotFound, "tool %s has no earlier active version to roll back to", st.Tool)
	}
	return best.Version, nil
}

// inForceTests runs, under the proposed policy, the tests of the policy in
// force that the proposal drops or changes: the author writes the
// proposed document's tests, so deleting a test that would fail, or
// rewriting what it expects, must not make the gate pass. They are named
// "in force: NAME".
func inForceTests(before, proposed *policy.Policy) []policy.TestResult {
	var carried []policy.Test
	for _, t := range before.Doc.Tests {
		if !slices.ContainsFunc(proposed.Doc.Tests, func(u policy.Test) bool { return reflect.DeepEqual(t, u) }) {
			carried = append(carried, t)
		}
	}
	if len(carried) == 0 {
		return nil
	}
	q := *proposed
	q.Doc.Tests = carried
	results, err := q.RunTests()
	if err != nil { // they ran when that policy was set; if they no longer can, say so
		return []policy.TestResult{{Name: "in force: the tests the proposal drops or changes", Problems: []string{err.Error()}}}
	}
	for i := range results {
		results[i].Name = "in force: " + results[i].Name
	}
	return results
}

// testsGate: the policy's own tests (policy documents carry them).
func testsGate(results []policy.TestResult) Gate {
	var failed []string
	for _, t := range results {
		if !t.Passed {
			failed = append(failed, t.Name+" ("+strings.Join(t.Problems, "; ")+")")
		}
	}
	g := Gate{Name: "policy-tests", Passed: len(failed) == 0, Report: results}
	switch {
	case len(results) == 0:
		g.Summary = "the policy carries no tests"
	case len(failed) == 0:
		g.Summary = fmt.Sprintf("all %d tests pass", len(results))
	default:
		g.Summary = fmt.Sprintf("%d of %d tests fail: %s", len(failed), len(results), clip(strings.Join(failed, "; "), 1000))
	}
	return g
}

func (s *Service) prepareToolVersion(ctx context.Context, pr *Proposal) error {
	r := &pr.Change
	if r.Source != "" || r.Labels != nil {
		return fault.New(fault.Invalid, "a tool-version proposal takes a tool and a version")
	}
	st, err := s.cfg.Catalog.State(ctx, r.Tool)
	if err != nil {
		return err
	}
	var active, target *catalog.Version
	for i := range st.Versions {
		v := &st.Versions[i]
		if v.Status == catalog.Active {
			active = v
		}
		if v.Version == r.Version {
			target = v
		}
	}
	if r.Rollback {
		v, err := RollbackTarget(st, r.Version)
		if err != nil {
			return err
		}
		r.Version = v
		for i := range st.Versions {
			if st.Versions[i].Version == v {
				target = &st.Versions[i]
			}
		}
	}
	if target == nil {
		return fault.New(fault.NotFound, "tool %s has no version %d", r.Tool, r.Version)
	}
	if target.Status == catalog.Active && st.ChangedAt.IsZero() {
		return fault.New(fault.Conflict, "version %d of %s is already active", r.Version, r.Tool)
	}
	pr.Base = catalog.VersionBase(st)
	var before json.RawMessage = json.RawMessage("{}")
	if active != nil {
		before = active.Definition
	}
	pr.Diff = LineDiff(prettyJSON(before), prettyJSON(target.Definition))
	breaking, other := SchemaDiff(before, target.Definition)
	for _, b := range breaking {
		pr.Summary = append(pr.Summary, "breaking: "+b)
	}
	pr.Summary = append(pr.Summary, other...)
	if len(target.Flags) > 0 {
		pr.Summary = append(pr.Summary, "flagged for the reviewer: "+strings.Join(target.Flags, ", "))
	}
	if r.Rollback {
		id, err := s.cfg.Store.ReviewedVersion(ctx, object(*r), strconv.Itoa(r.Version))
		if err != nil {
			return err
		}
		pr.FastPath, pr.FastPathOf = id != "", id
		if pr.FastPath {
			return nil
		}
	}
	calls, empty, truncated, err := s.recordedCalls(ctx, r.Tool)
	if err != nil {
		return err
	}
	g := Gate{Name: "schema-compatible", Passed: len(breaking) == 0 || calls == 0, Report: map[string]any{"breaking": breaking, "other": other}}
	switch {
	case len(breaking) == 0:
		g.Summary = "no change can refuse arguments the pinned schema accepted"
	case calls == 0:
		g.Summary = fmt.Sprintf("%d breaking schema changes, but no recorded calls in the window", len(breaking))
	default:
		g.Summary = fmt.Sprintf("%d breaking schema changes (%s) and %d recorded calls in the window", len(breaking), strings.Join(breaking, "; "), calls)
	}
	pr.Gates = append(pr.Gates, g)
	required := readSchema(target.Definition).required
	rc := Gate{Name: "recorded-calls", Passed: !(empty > 0 && len(required) > 0),
		Report: map[string]any{"calls": calls, "empty_arguments": empty, "truncated": truncated, "checkable": empty}}
	rc.Summary = fmt.Sprintf("%d recorded calls in the window; arguments are kept only as SHA-256 digests, so only the %d with no arguments "+
		"(a known digest) can be checked against the new schema", calls, empty)
	if !rc.Passed {
		rc.Summary += fmt.Sprintf(": they would fail it (it requires %s)", strings.Join(required, ", "))
	}
	pr.Gates = append(pr.Gates, rc)
	return nil
}

// emptyArgsDigest is the SHA-256 of the canonical empty arguments, {}:
// the one recorded digest whose arguments are known.
var emptyArgsDigest = func() string { sum := sha256.Sum256([]byte("{}")); return hex.EncodeToString(sum[:]) }()

// recordedCalls counts the tool's recorded decisions in the window, and
// those made with no arguments.
func (s *Service) recordedCalls(ctx context.Context, tool string) (calls, empty int, truncated bool, err error) {
	recs, truncated, err := s.window(ctx, "tool:"+tool, s.cfg.ReplayMax)
	for _, r := range recs {
		calls++
		if r.Detail["args_sha256"] == emptyArgsDigest {
			empty++
		}
	}
	return calls, empty, truncated, err
}

// window reads the tool-call records of the replay window (target: only
// those of one tool), newest first, at most bound.
func (s *Service) window(ctx context.Context, target string, bound int) ([]audit.Record, bool, error) {
	if s.cfg.Index != nil {
		s.cfg.Index.Settle(ctx, 2*time.Second)
	}
	now := s.cfg.Now()
	q := audit.Query{Event: "tool-call", Target: target, Since: now.Add(-s.cfg.ReplayWindow), Limit: audit.MaxLimit}
	var out []audit.Record
	for len(out) < bound {
		q.Limit = min(audit.MaxLimit, bound-len(out))
		page, err := s.cfg.Audit.QueryAudit(ctx, q)
		if err != nil {
			return nil, false, err
		}
		out = append(out, page...)
		if len(page) < q.Limit {
			return out, false, nil
		}
		q.BeforeSeq = page[len(page)-1].Seq
	}
	return out, true, nil
}

func (s *Service) prepareLabels(ctx context.Context, pr *Proposal) error {
	r := &pr.Change
	if r.Source != "" || r.Version != 0 || r.Rollback {
		return fault.New(fault.Invalid, "a tool-labels proposal takes a tool and labels")
	}
	if r.Labels != nil {
		if err := r.Labels.Validate(); err != nil {
			return fault.New(fault.Invalid, "%s", err)
		}
	}
	st, err := s.cfg.Catalog.State(ctx, r.Tool)
	if err != nil {
		return err
	}
	pr.Base = catalog.LabelsBase(st.Labels)
	if catalog.LabelsBase(r.Labels) == pr.Base {
		return fault.New(fault.Conflict, "tool %s already has these labels", r.Tool)
	}
	show := func(l *policy.Labels) string {
		if l == nil {
			return "(no labels: the upstream's hints stand in)"
		}
		b, _ := json.MarshalIndent(l, "", "  ")
		return string(b)
	}
	pr.Diff = LineDiff(show(st.Labels), show(r.Labels))
	return nil
}

// prepareRoles: a user's roles, their diff and the grants they add or
// take away.
func (s *Service) prepareRoles(ctx context.Context, p *authn.Principal, pr *Proposal) error {
	r := &pr.Change
	if r.Tool != "" || r.Source != "" || r.Labels != nil || r.Version != 0 || r.Rollback {
		return fault.New(fault.Invalid, "a user-roles proposal takes a user and roles")
	}
	u, err := s.cfg.Identity.UserByName(ctx, r.User)
	if err != nil {
		return err
	}
	for _, name := range r.Roles {
		if err := identity.ValidName("role", name); err != nil {
			return fault.New(fault.Invalid, "%s", err)
		}
	}
	r.Roles = sortedRoles(r.Roles)
	pr.Base = identity.RolesBase(u.Roles)
	if identity.RolesBase(r.Roles) == pr.Base {
		return fault.New(fault.Conflict, "user %s already has these roles", r.User)
	}
	before, err := s.grants(ctx, u.Roles)
	if err != nil {
		return err
	}
	after, err := s.grants(ctx, r.Roles)
	if err != nil {
		return err
	}
	// Nobody proposes handing out (or taking away) more than they hold;
	// the reviewer who applies it is held to the same (SetRolesTx).
	all, err := authz.ParseGrants(append(slices.Clone(before), after...))
	if err != nil {
		return err
	}
	if g, ok := p.Perms.CoversAll(all); !ok {
		return fault.New(fault.Forbidden, "permission denied: changing user %s would carry %s, which you do not hold", r.User, g)
	}
	pr.Diff = LineDiff(rolesText(u.Roles, before), rolesText(r.Roles, after))
	for _, g := range after {
		if !slices.Contains(before, g) {
			pr.Summary = append(pr.Summary, "grant "+g+" given")
		}
	}
	for _, g := range before {
		if !slices.Contains(after, g) {
			pr.Summary = append(pr.Summary, "grant "+g+" taken away")
		}
	}
	return nil
}

// grants lists the grants the named roles carry, sorted.
func (s *Service) grants(ctx context.Context, roles []string) ([]string, error) {
	var out []string
	for _, name := range roles {
		role, err := s.cfg.Identity.RoleByName(ctx, name)
		if err != nil {
			if fault.Is(err, fault.NotFound) {
				return nil, fault.New(fault.NotFound, "role %q does not exist", name)
			}
			return nil, err
		}
		out = append(out, role.Grants.Strings()...)
	}
	return sortedRoles(out), nil
}

func sortedRoles(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

func rolesText(roles, grants []string) string {
	var b strings.Builder
	for _, r := range roles {
		b.WriteString("role " + r + "\n")
	}
	for _, g := range grants {
		b.WriteString("grant " + g + "\n")
	}
	return b.String()
}

// apply makes pr's change inside tx (r is the applying record, by who
// applies it); the returned function, run after the commit, puts it in
// force.
func (s *Service) apply(ctx context.Context, tx audit.Tx, r *audit.Record, by *authn.Principal, pr *Proposal) (after func(context.Context) error, err error) {
	switch pr.Kind {
	case KindUserRoles:
		if err := s.cfg.Identities.SetRolesTx(ctx, tx, r, by, pr.Change.User, pr.Change.Roles, pr.Base); err != nil {
			return nil, err
		}
		pr.Result = identity.RolesBase(pr.Change.Roles)
		return func(context.Context) error { s.cfg.Identities.Invalidate(); return nil }, nil
	case KindPolicy:
		base, _ := strconv.Atoi(pr.Base)
		v, err := s.cfg.Policy.ApplyTx(ctx, tx, r, []byte(pr.Change.Source), pr.Author, base)
		if err != nil {
			return nil, err
		}
		pr.Result = strconv.Itoa(v.Version)
		return func(context.Context) error { return s.cfg.Policy.Install(v) }, nil
	case KindToolVersion:
		if err := s.cfg.Catalog.ActivateTx(ctx, tx, r, pr.Change.Tool, pr.Change.Version, pr.Base, pr.Author); err != nil {
			return nil, err
		}
		pr.Result = strconv.Itoa(pr.Change.Version)
	case KindToolLabels:
		if err := s.cfg.Catalog.SetLabelsTx(ctx, tx, r, pr.Change.Tool, pr.Change.Labels, pr.Base, pr.Author); err != nil {
			return nil, err
		}
		pr.Result = catalog.LabelsBase(pr.Change.Labels)
	}
	return s.cfg.Catalog.Reload, nil
}

// facts reconstructs a recorded tool-call decision's input from what is
// known now (ReplayReport says what that is).
func (s *Service) facts(ctx context.Context) Facts {
	snap := s.cfg.Catalog.Snapshot()
	type who struct {
		roles   []string
		service bool
		ok      bool
	}
	users := map[string]who{}
	type key struct {
		env   string
		scope []string
		ok    bool
	}
	keys := map[string]key{} // a window's decisions come from few users and keys: each is read once
	return func(rec *audit.Record) (policy.Input, string) {
		name := strings.TrimPrefix(rec.Target, "tool:")
		e, ok := snap.Lookup(name)
		if !ok {
			return policy.Input{}, CauseToolGone
		}
		u, seen := users[rec.Actor]
		if !seen {
			if x, err := s.cfg.Identity.UserByName(ctx, rec.Actor); err == nil {
				u = who{roles: x.Roles, service: x.Service, ok: true}
			}
			users[rec.Actor] = u
		}
		if !u.ok {
			return policy.Input{}, CauseUserGone
		}
		t := e.PolicyTool()
		if v := detailInt(rec.Detail["version"]); v > 0 {
			t.Version = v
		}
		in := policy.Input{User: rec.Actor, Roles: u.roles, Service: u.service, KeyID: rec.KeyID, Environment: authn.DefaultEnvironment,
			Granted: true, Tool: t, Now: rec.Time, Touched: map[string]time.Time{}}
		if reasons, _ := rec.Detail["reasons"].([]any); len(reasons) == 1 && reasons[0] == policy.ReasonNoGrant {
			in.Granted = false
		}
		if rec.KeyID != "" {
			k, seen := keys[rec.KeyID]
			if !seen {
				if x, err := s.cfg.Identity.KeyByID(ctx, rec.KeyID); err == nil {
					k = key{env: x.Environment, ok: true}
					if x.Scope != nil {
						k.scope = x.Scope.Strings()
					}
				}
				keys[rec.KeyID] = k
			}
			if k.ok && k.env != "" {
				in.Environment = k.env
			}
			if k.ok {
				in.Scope = k.scope
			}
		}
		return in, ""
	}
}

// replayWindow reads the decisions the replay considers: tool by tool
// (those in the catalog, live or held; the decisions of a tool gone
// cannot be replayed), at most ReplayMax in all, an equal share each, the
// share a tool leaves unused going to the tools after it. So calls of one tool,
// however many (a flood of harmless ones), never push another tool's
// decisions out of the bound.
func (s *Service) replayWindow(ctx context.Context) ([]audit.Record, bool, error) {
	snap := s.cfg.Catalog.Snapshot()
	var names []string
	for _, e := range append(slices.Clone(snap.Entries()), snap.Held()...) {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return nil, false, nil
	}
	var out []audit.Record
	truncated := false
	for i, name := range names {
		share := max(1, (s.cfg.ReplayMax-len(out))/(len(names)-i))
		if len(out) >= s.cfg.ReplayMax {
			share = 0
		}
		recs, cut, err := s.window(ctx, "tool:"+name, share)
		if err != nil {
			return nil, false, err
		}
		out, truncated = append(out, recs...), truncated || cut
	}
	return out, truncated, nil
}

// replay runs the replay gate for proposed.
func (s *Service) replay(ctx context.Context, proposed *policy.Policy) (ReplayReport, error) {
	recs, truncated, err := s.replayWindow(ctx)
	if err != nil {
		return ReplayReport{}, err
	}
	compiled := map[int]*policy.Policy{}
	own := func(version int) *policy.Policy {
		if p, ok := compiled[version]; ok {
			return p
		}
		var p *policy.Policy
		if v, err := s.cfg.Policy.Stored(ctx, version); err == nil && version > 0 {
			if p, err = policy.Parse([]byte(v.Source)); err != nil {
				p = nil
			} else {
				p.Version = v.Version
			}
		}
		compiled[version] = p
		return p
	}
	rep := Replay(recs, s.facts(ctx), own, proposed)
	now := s.cfg.Now()
	rep.Since, rep.Until, rep.Truncated = now.Add(-s.cfg.ReplayWindow).UTC(), now.UTC(), truncated
	return rep, nil
}
