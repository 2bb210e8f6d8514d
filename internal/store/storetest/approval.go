package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
)

// request returns approval request n by requester, created n minutes
// after t0 and expiring an hour after that.
func request(n int, requester string) approval.Approval {
	args := json.RawMessage(fmt.Sprintf(`{"amount":%d,"note":"caf\u00e9 \"quoted\""}`, n))
	created := t0.Add(time.Duration(n) * time.Minute)
	return approval.Approval{ID: fmt.Sprintf("apr_%026d", n), Status: approval.Pending, Requester: requester, Owner: "", KeyID: keyID(n),
		Tool: "fin.pay", Upstream: "fin", ToolVersion: 2, ToolDigest: "digest-2", ArgsSHA256: fmt.Sprintf("sha-%d", n), Args: args, ArgsBytes: len(args),
		Decision: policy.Decision{Effect: "approve", Score: 70, Reasons: []string{"large-payment"}, Policy: 3,
			Requires: []policy.Requirement{{Approvers: 2, Role: "finance-lead", Reason: "payments"}}, Message: "needs two"},
		RequestID: fmt.Sprintf("req-%d", n), CreatedAt: created, ExpiresAt: created.Add(time.Hour), Votes: []approval.Vote{}}
}

func insertApprovals(t *testing.T, s Store, as ...approval.Approval) {
	t.Helper()
	mustWrite(t, s, func(tx Tx) error {
		for _, a := range as {
			if err := tx.InsertApproval(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// sameApproval compares what a store must keep of a request.
func sameApproval(got, want approval.Approval) bool {
	gd, _ := json.Marshal(got.Decision)
	wd, _ := json.Marshal(want.Decision)
	return got.ID == want.ID && got.Status == want.Status && got.Requester == want.Requester && got.Owner == want.Owner && got.KeyID == want.KeyID &&
		got.Tool == want.Tool && got.Upstream == want.Upstream && got.ToolVersion == want.ToolVersion && got.ToolDigest == want.ToolDigest &&
		got.ArgsSHA256 == want.ArgsSHA256 && string(got.Args) == string(want.Args) && got.ArgsBytes == len(want.Args) && string(gd) == string(wd) &&
		got.RequestID == want.RequestID && got.CreatedAt.Equal(want.CreatedAt) && got.ExpiresAt.Equal(want.ExpiresAt) &&
		got.DecidedAt.Equal(want.DecidedAt) && got.UsedAt.Equal(want.UsedAt) && len(got.Votes) == len(want.Votes)
}

// A request reads back as stored: its arguments byte for byte (they are
// hashed), its decision, its times; a second request with one id is a
// conflict.
func testApprovalRoundTrip(t *testing.T, s Store) {
	a := request(1, "alice")
	a.Owner = "root"
	insertApprovals(t, s, a)
	got, err := s.Approval(ctx, a.ID)
	if err != nil || !sameApproval(got, a) || got.Votes == nil {
		t.Errorf("read back as %+v, %v;\nstored %+v", got, err, a)
	}
	_, err = s.Approval(ctx, "apr_nosuchrequest00000000000")
	wantKind(t, err, fault.NotFound, "an unknown request")
	err = write(s, func(tx Tx) error { return tx.InsertApproval(ctx, request(1, "bob")) })
	wantKind(t, err, fault.Conflict, "a second request with one id")
}

// Votes are kept in the order cast, with their roles; one person votes
// once on a request.
func testApprovalVotes(t *testing.T, s Store) {
	insertApprovals(t, s, request(1, "alice"), request(2, "alice"))
	id := request(1, "").ID
	votes := []approval.Vote{
		{Approver: "carol", Roles: []string{"finance-lead", "staff"}, Approve: true, Reason: "ok", At: t0.Add(2 * time.Minute)},
		{Approver: "dave", Roles: []string{}, Approve: false, Reason: "no: too much", At: t0.Add(3 * time.Minute)},
	}
	mustWrite(t, s, func(tx Tx) error {
		for _, v := range votes {
			if err := tx.InsertVote(ctx, id, v); err != nil {
				return err
			}
		}
		return tx.InsertVote(ctx, request(2, "").ID, votes[0]) // the same person on another request
	})
	err := write(s, func(tx Tx) error {
		return tx.InsertVote(ctx, id, approval.Vote{Approver: "carol", Roles: []string{}, Approve: false, Reason: "changed my mind", At: t0.Add(4 * time.Minute)})
	})
	wantKind(t, err, fault.Conflict, "a second vote by carol")
	a, err := s.Approval(ctx, id)
	must(t, err)
	if len(a.Votes) != 2 {
		t.Fatalf("votes %+v", a.Votes)
	}
	for i, v := range votes {
		g := a.Votes[i]
		if g.Approver != v.Approver || !slices.Equal(g.Roles, v.Roles) || g.Approve != v.Approve || g.Reason != v.Reason || !g.At.Equal(v.At) {
			t.Errorf("vote %d read back as %+v, cast as %+v", i, g, v)
		}
	}
}

// A call finds the newest request for exactly it in a status; queries
// filter by status, requester and creation time, newest first; due
// requests are the pending and approved ones expired by now.
func testApprovalQueries(t *testing.T, s Store) {
	a1, a2, a3, b4 := request(1, "alice"), request(2, "alice"), request(3, "alice"), request(4, "bob")
	a2.ArgsSHA256 = a1.ArgsSHA256 // the same call, asked again later
	a3.ExpiresAt = a1.ExpiresAt.Add(-30 * time.Minute)
	insertApprovals(t, s, a1, a2, a3, b4)
	mustWrite(t, s, func(tx Tx) error { return tx.SetApprovalStatus(ctx, a3.ID, approval.Pending, approval.Approved, t0) })
	call := approval.Call{Requester: "alice", Tool: "fin.pay", ToolDigest: "digest-2", ArgsSHA256: a1.ArgsSHA256}
	if got, err := s.FindApproval(ctx, call, approval.Pending); err != nil || got.ID != a2.ID {
		t.Errorf("find: %s, %v; want the newer %s", got.ID, err, a2.ID)
	}
	for name, c := range map[string]approval.Call{
		"another requester": {Requester: "bob", Tool: call.Tool, ToolDigest: call.ToolDigest, ArgsSHA256: call.ArgsSHA256},
		"another version":   {Requester: call.Requester, Tool: call.Tool, ToolDigest: "digest-1", ArgsSHA256: call.ArgsSHA256},
		"other arguments":   {Requester: call.Requester, Tool: call.Tool, ToolDigest: call.ToolDigest, ArgsSHA256: "sha-9"},
	} {
		_, err := s.FindApproval(ctx, c, approval.Pending)
		wantKind(t, err, fault.NotFound, name)
	}
	_, err := s.FindApproval(ctx, call, approval.Approved)
	wantKind(t, err, fault.NotFound, "the call in another status")
	ids := func(as []approval.Approval, err error) []string {
		must(t, err)
		out := []string{}
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	for name, c := range map[string]struct {
		q    approval.Query
		want []approval.Approval
	}{
		"all":       {approval.Query{Limit: 10}, []approval.Approval{b4, a3, a2, a1}},
		"limit":     {approval.Query{Limit: 2}, []approval.Approval{b4, a3}},
		"status":    {approval.Query{Status: approval.Pending, Limit: 10}, []approval.Approval{b4, a2, a1}},
		"requester": {approval.Query{Requester: "alice", Status: approval.Pending, Limit: 10}, []approval.Approval{a2, a1}},
		"since":     {approval.Query{Since: a2.CreatedAt, Limit: 10}, []approval.Approval{b4, a3, a2}},
		"until":     {approval.Query{Until: a2.CreatedAt, Limit: 10}, []approval.Approval{a1}},
	} {
		want := []string{}
		for _, a := range c.want {
			want = append(want, a.ID)
		}
		if got := ids(s.Approvals(ctx, c.q)); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	// At a1's expiry: a3 (approved, expired earlier) and a1 are due, in
	// order of expiry; a used one never is.
	if got := ids(s.DueApprovals(ctx, a1.ExpiresAt)); !slices.Equal(got, []string{a3.ID, a1.ID}) {
		t.Errorf("due at %v: %v", a1.ExpiresAt, got)
	}
	mustWrite(t, s, func(tx Tx) error {
		return tx.SetApprovalStatus(ctx, a3.ID, approval.Approved, approval.Used, t0.Add(time.Minute))
	})
	if got := ids(s.DueApprovals(ctx, a1.ExpiresAt)); !slices.Equal(got, []string{a1.ID}) {
		t.Errorf("due after a3 was used: %v", got)
	}
	if got := ids(s.DueApprovals(ctx, t0)); len(got) != 0 {
		t.Errorf("due before anything expired: %v", got)
	}
	a, _ := s.Approval(ctx, a3.ID)
	if !a.DecidedAt.Equal(t0) || !a.UsedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("decided %v used %v", a.DecidedAt, a.UsedAt)
	}
}

// Of callers racing to move one request out of a status (two claims of
// one approval, a claim and a deny), exactly one wins; the others get a
// conflict and change nothing.
func testApprovalRace(t *testing.T, s Store) {
	a := request(1, "alice")
	insertApprovals(t, s, a)
	mustWrite(t, s, func(tx Tx) error { return tx.SetApprovalStatus(ctx, a.ID, approval.Pending, approval.Approved, t0) })
	const racers = 8
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		to := approval.Used
		if i%2 == 1 {
			to = approval.Denied
		}
		wg.Go(func() {
			errs[i] = write(s, func(tx Tx) error { return tx.SetApprovalStatus(ctx, a.ID, approval.Approved, to, t0.Add(time.Minute)) })
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("racers %d and %d both moved the request", won, i)
		case err == nil:
			won = i
		case !fault.Is(err, fault.Conflict):
			t.Errorf("racer %d: %v, want a conflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no racer moved the request")
	}
	want := approval.Used
	if won%2 == 1 {
		want = approval.Denied
	}
	if got, _ := s.Approval(ctx, a.ID); got.Status != want {
		t.Errorf("status %s, the winner set %s", got.Status, want)
	}
	err := write(s, func(tx Tx) error {
		return tx.SetApprovalStatus(ctx, "apr_nosuchrequest00000000000", approval.Pending, approval.Denied, t0)
	})
	wantKind(t, err, fault.Conflict, "moving a request that does not exist")
}
