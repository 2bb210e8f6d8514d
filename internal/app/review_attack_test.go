package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/policy"
)

// A person cannot review what their own service account proposed: ci-bot
// (owned by bob) proposes, bob approves through either of his keys and is
// refused; another person applies it.
func TestOwnerCannotReviewTheirServiceAccountsProposal(t *testing.T) {
	t.Parallel()
	w := newReviewWorld(t, 1)
	s := w.s
	pr := propose(t, s, w.bot, "PUT", "/api/v1/policy", adminapi.SetPolicy{Source: denyLookup(), Reason: "from the pipeline"})
	if pr.Author != "ci-bot" || pr.AuthorOwner != "bob" {
		t.Fatalf("proposal: author %q owner %q", pr.Author, pr.AuthorOwner)
	}
	for _, key := range []string{w.bob, w.bob2} {
		mustStatus(t, review(s, key, pr.ID, "approve", adminapi.ReviewRequest{Reason: "my bot, my change"}), http.StatusForbidden)
	}
	if p := proposal(t, s, pr.ID); p.State != change.Open || len(p.Votes) != 0 || policyVersion(t, s) != 1 {
		t.Fatalf("after the owner's approval: %+v, policy version %d", p, policyVersion(t, s))
	}
	mustStatus(t, review(s, w.carol, pr.ID, "approve", adminapi.ReviewRequest{Reason: "checked"}), http.StatusOK)
	if policyVersion(t, s) != 2 {
		t.Fatal("another person's approval did not apply it")
	}
}

// A quorum counts only the approvals that still stand when it is reached:
// one whose reviewer was disabled since, or lost the grant, or whose key
// was revoked, does not count; a proposal whose author was disabled since
// does not apply.
func TestQuorumCountsOnlyApprovalsThatStillStand(t *testing.T) {
	t.Parallel()
	w := newReviewWorld(t, 2)
	s := w.s
	setup(t, s, "", nil, "dave", false)
	mustStatus(t, s.Do("POST", "/api/v1/users/dave/roles", s.AdminKey, map[string]any{"roles": []string{"gov"}}), http.StatusOK)
	dave, daveID := newKey(t, s, map[string]any{"user": "dave"})

	// carol approves, then is disabled: the admin's approval is the only one that counts.
	pr := propose(t, s, w.bob, "PUT", "/api/v1/policy", adminapi.SetPolicy{Source: denyLookup(), Reason: "lookups leak"})
	mustStatus(t, review(s, w.carol, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/users/carol/disable", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, review(s, s.AdminKey, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusOK)
	if p := proposal(t, s, pr.ID); p.State != change.Open || policyVersion(t, s) != 1 {
		t.Fatalf("applied with a disabled reviewer's approval: %+v", p)
	}
	rec := records(t, s, audit.Query{Event: change.EventApproved, Target: "proposal:" + pr.ID, Actor: "admin"})
	if len(rec) != 1 || fmt.Sprint(rec[0].Detail["approvals"]) != "1" || fmt.Sprint(rec[0].Detail["approvals_not_counted"]) != "[carol]" {
		t.Fatalf("approval record: %+v", rec)
	}
	// dave's approval is the second that stands: applied, reviewed by admin and dave.
	mustStatus(t, review(s, dave, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusOK)
	if p := proposal(t, s, pr.ID); p.State != change.Applied || policyVersion(t, s) != 2 {
		t.Fatalf("two standing approvals: %+v", p)
	}
	var page adminapi.EvidencePage
	s.Do("GET", "/api/v1/audit/version_log?object=policy&limit=1", s.AdminKey, nil).JSON(t, &page)
	if len(page.VersionLog) != 1 || !slices.Equal(page.VersionLog[0].Reviewers, []string{"admin", "dave"}) {
		t.Fatalf("version log: %+v", page.VersionLog)
	}

	// dave approves, then his key is revoked; then he loses the grant.
	for i, undo := range []func(){
		func() { mustStatus(t, s.Do("POST", "/api/v1/keys/"+daveID+"/revoke", s.AdminKey, nil), http.StatusOK) },
		func() {
			mustStatus(t, s.Do("POST", "/api/v1/users/dave/roles", s.AdminKey, map[string]any{"roles": []string{}}), http.StatusOK)
		},
	} {
		pr := propose(t, s, w.bob, "POST", "/api/v1/policy/rollback", adminapi.RollbackPolicy{Version: 1, Reason: fmt.Sprint("undo ", i)})
		mustStatus(t, review(s, dave, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusOK)
		undo()
		mustStatus(t, review(s, s.AdminKey, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusOK)
		if p := proposal(t, s, pr.ID); p.State != change.Open || policyVersion(t, s) != 2 {
			t.Fatalf("case %d: applied with an approval that no longer stands: %+v", i, p)
		}
		mustStatus(t, s.Do("POST", "/api/v1/proposals/"+pr.ID+"/withdraw", w.bob, adminapi.WithdrawRequest{Reason: "done"}), http.StatusOK)
		dave, daveID = newKey(t, s, map[string]any{"user": "dave"})
		mustStatus(t, s.Do("POST", "/api/v1/users/dave/roles", s.AdminKey, map[string]any{"roles": []string{"gov"}}), http.StatusOK)
	}

	// The author is disabled after proposing: it does not apply.
	pr = propose(t, s, w.bob, "POST", "/api/v1/policy/rollback", adminapi.RollbackPolicy{Version: 1, Reason: "undo"})
	mustStatus(t, s.Do("POST", "/api/v1/users/bob/disable", s.AdminKey, nil), http.StatusOK)
	mustStatus(t, review(s, dave, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusConflict)
	mustStatus(t, review(s, s.AdminKey, pr.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusConflict)
	if p := proposal(t, s, pr.ID); p.State != change.Open || len(p.Votes) != 0 || policyVersion(t, s) != 2 {
		t.Fatalf("a disabled author's proposal applied: %+v", p)
	}
}

// Where users' roles are reviewed, linking an identity-provider subject to
// a user who holds roles is refused: whoever signs in as the subject would
// act with those roles, the author of a proposal approving it as that
// user. A user without roles can still be linked (then given roles by a
// reviewed proposal).
func TestSubjectLinkDoesNotGrantAroundReview(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "root2", "roles": []string{"admin"}}), http.StatusCreated)
	s.Stop()
	s.Restart(func(c *config.Config) { c.RequireReviewKinds = []string{"user-roles"} })
	link := func(user, subject string) apptest.Response {
		return s.Do("POST", "/api/v1/idp/links", s.AdminKey, adminapi.SubjectLinkRequest{User: user, Issuer: "https://idp.example", Subject: subject})
	}
	mustStatus(t, link("root2", "mallory"), http.StatusConflict)
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "dan", "roles": []string{}}), http.StatusCreated)
	mustStatus(t, link("dan", "dan-at-idp"), http.StatusCreated)
	var ls adminapi.SubjectLinkList
	s.Do("GET", "/api/v1/idp/links", s.AdminKey, nil).JSON(t, &ls)
	if len(ls.Links) != 1 || ls.Links[0].User != "dan" {
		t.Fatalf("links: %+v", ls.Links)
	}
	if rec := records(t, s, audit.Query{Event: "idp-link", Target: "user:root2"}); len(rec) != 1 || rec[0].Outcome == audit.Success {
		t.Fatalf("the refused link's record: %+v", rec)
	}
}

// The version log holds every version of a governed object, made without
// review too: a tool's version 1 made active by its upstream's first sync,
// and a user's roles set directly.
func TestVersionLogHoldsUnreviewedVersions(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "caller", []string{"invoke:fin.*"}, "dan", false)
	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "auditor2", "grants": []string{"read-audit:*"}}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/users/dan/roles", s.AdminKey, map[string]any{"roles": []string{"caller", "auditor2"}}), http.StatusOK)
	var page adminapi.EvidencePage
	s.Do("GET", "/api/v1/audit/version_log?object=tool:fin.lookup", s.AdminKey, nil).JSON(t, &page)
	if len(page.VersionLog) != 1 || page.VersionLog[0].Version != "1" || page.VersionLog[0].Change != "tool-version" || page.VersionLog[0].Reviewed {
		t.Fatalf("tool version log: %+v", page.VersionLog)
	}
	s.Do("GET", "/api/v1/audit/version_log?object=user:dan", s.AdminKey, nil).JSON(t, &page)
	if len(page.VersionLog) != 1 || page.VersionLog[0].Version != "auditor2,caller" || page.VersionLog[0].Change != "user-roles" || page.VersionLog[0].Author != "admin" {
		t.Fatalf("user version log: %+v", page.VersionLog)
	}
}

// Whoever may review users' roles (manage-identities) may read the
// proposals they review; a withdrawal's reason is held to what every
// other reason is (printable text, bounded).
func TestIdentityReviewerReadsTheDiff(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	mustStatus(t, s.Do("POST", "/api/v1/roles", s.AdminKey, map[string]any{"name": "idm", "grants": []string{"manage-identities:*"}}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "ivy", "roles": []string{"idm"}}), http.StatusCreated)
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "dan", "roles": []string{}}), http.StatusCreated)
	ivy, _ := newKey(t, s, map[string]any{"user": "ivy"})
	s.Stop()
	s.Restart(func(c *config.Config) { c.RequireReviewKinds = []string{"user-roles"} })
	p := propose(t, s, s.AdminKey, "POST", "/api/v1/users/dan/roles", adminapi.SetRoles{Roles: []string{"idm"}, Reason: "dan joins identity"})
	r := s.Do("GET", "/api/v1/proposals/"+p.ID, ivy, nil)
	mustStatus(t, r, http.StatusOK)
	var got change.Proposal
	if r.JSON(t, &got); got.Diff != p.Diff {
		t.Fatalf("diff read %q, proposed %q", got.Diff, p.Diff)
	}
	mustStatus(t, s.Do("GET", "/api/v1/proposals?state=open", ivy, nil), http.StatusOK)
	for _, reason := range []string{"\x1b[2Jall clear", strings.Repeat("a", change.MaxReason+1)} {
		mustStatus(t, s.Do("POST", "/api/v1/proposals/"+p.ID+"/withdraw", s.AdminKey, adminapi.WithdrawRequest{Reason: reason}), http.StatusBadRequest)
	}
	if got := proposal(t, s, p.ID); got.State != change.Open {
		t.Fatalf("withdrawn with a hostile reason: %+v", got)
	}
	mustStatus(t, review(s, ivy, p.ID, "approve", adminapi.ReviewRequest{Reason: "read the diff"}), http.StatusOK)
}

// A flood of harmless calls cannot hide from the replay the decisions a
// policy change would loosen: the bounded read is shared among the tools.
// Here one held payment, then six lookups, with room for four decisions:
// the payment is still replayed, and its loosening fails the gate.
func TestReplayBoundNotCrowdedOutByAFlood(t *testing.T) {
	t.Parallel()
	w := newReviewWorldWith(t, 1, func(c *config.Config) { c.ReplayMax = 4 })
	s := w.s
	lp := propose(t, s, w.bob, "POST", "/api/v1/tools/labels", adminapi.ToolLabels{Tool: "fin.pay",
		Labels: &policy.Labels{DataClasses: []string{"financial"}, Irreversible: true}, Reason: "payments are irreversible"})
	mustStatus(t, review(s, w.carol, lp.ID, "approve", adminapi.ReviewRequest{Reason: "ok"}), http.StatusOK)
	if res := w.call(t, "fin.pay", map[string]any{"amount": 50, "to": "ACME"}); !res.IsError {
		t.Fatal("the payment was not held")
	}
	for i := range 6 {
		if res := w.call(t, "fin.lookup", map[string]any{"id": fmt.Sprint(i)}); res.IsError {
			t.Fatalf("lookup: %s", resultText(res))
		}
	}
	src := strings.Replace(string(policy.DefaultSource()), "decision: approve\n    risk: 10\n", "decision: allow\n    risk: 10\n", 1)
	pr := propose(t, s, w.bob, "PUT", "/api/v1/policy", adminapi.SetPolicy{Source: src, Reason: "fewer holds"})
	g := pr.Gates[1]
	rep := replayOf(t, g)
	if g.Name != "replay" || g.Passed || rep.Loosened != 1 || rep.ByTool["fin.pay"]["approve→allow"] != 1 || !rep.Truncated || rep.Considered > 4 {
		t.Fatalf("replay under a flood: %+v %+v", g, rep)
	}
}

// The author writes the proposed document's tests: deleting the ones that
// would fail does not pass the policy-tests gate, which also runs the
// tests of the policy in force that the proposal drops or changes.
func TestDroppedTestsStillGate(t *testing.T) {
	t.Parallel()
	w := newReviewWorld(t, 1)
	s := w.s
	src := strings.Replace(string(policy.DefaultSource()), "decision: approve\n    risk: 10\n", "decision: allow\n    risk: 10\n", 1)
	src = src[:strings.Index(src, "\ntests:")+1] // and no tests to fail
	pr := propose(t, s, w.bob, "PUT", "/api/v1/policy", adminapi.SetPolicy{Source: src, Reason: "fewer holds"})
	g := pr.Gates[0]
	if g.Name != "policy-tests" || g.Passed || !strings.Contains(g.Summary, "in force: a small payment needs one approver") {
		t.Fatalf("policy-tests gate: %+v", g)
	}
	mustStatus(t, review(s, w.carol, pr.ID, "approve", adminapi.ReviewRequest{Reason: "fine"}), http.StatusConflict)
}
