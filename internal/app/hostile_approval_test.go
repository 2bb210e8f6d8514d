package app_test

import (
	"context"
	"encoding/base32"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/policy"
)

// Hostile tests of the approval surface (issue "Trust at the edges", §7):
//
//	attack                                                       observable that holds
//	approve, then POST /approvals/ID/deny before bob repeats      deny 200; request denied (voided on record); repeat not run
//	POST /approvals/ID/deny racing bob's repeat of the call      deny 200 ⇔ upstream received nothing; deny 409 ⇔ it ran once
//	POST /approvals/ID/approve racing /deny while the call waits deny 200 ⇔ upstream received nothing
//	guess an approval id                                          ids carry 128 bits (26 base32 letters)
//	bidi / control characters in arguments, reasons, names        see hostile_render_test.go

// Carol approves; before bob repeats the call, dave denies it. The deny
// used to be refused (409, "approved, not pending") and bob's repeat ran.
func TestHostileDenyAfterApproveVoids(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	_, id := w.pay(t, 42)
	mustStatus(t, w.vote(w.carol, id, "approve", "looks fine"), http.StatusOK)
	if a := w.status(t, id); a.Status != approval.Approved {
		t.Fatalf("after the approval: %s", a.Status)
	}
	if r := w.vote(w.dave, id, "deny", "that supplier is under investigation"); r.Status != http.StatusOK {
		t.Fatalf("deny after approve: %d %s", r.Status, r.Body)
	}
	if a := w.status(t, id); a.Status != approval.Denied || len(a.Votes) != 2 {
		t.Fatalf("after the deny: %+v", a)
	}
	res, again := w.pay(t, 42)
	if !res.IsError || !strings.Contains(resultText(res), "was not performed") || again == id || w.paid() != 0 {
		t.Fatalf("the voided approval ran the call: %s (paid %d)", resultText(res), w.paid())
	}
	recs := records(t, w.s, audit.Query{Event: approval.EventDecided, Target: "approval:" + id, Outcome: audit.Success})
	if len(recs) != 2 || recs[0].Actor != "dave" || recs[0].Detail["settled"] != "denied" || recs[0].Detail["voided"] != true {
		t.Errorf("the voiding deny on record: %+v", recs)
	}
	if n := len(records(t, w.s, audit.Query{Event: approval.EventUsed, Target: "approval:" + id})); n != 0 {
		t.Errorf("the voided approval was used %d times", n)
	}
	// Once used, a deny can no longer void it.
	_, id = w.pay(t, 43)
	mustStatus(t, w.vote(w.carol, id, "approve", "ok"), http.StatusOK)
	if res, _ := w.pay(t, 43); res.IsError || w.paid() != 1 {
		t.Fatalf("approved call: %s", resultText(res))
	}
	if r := w.vote(w.dave, id, "deny", "too late"); r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "used") {
		t.Errorf("deny after use: %d %s", r.Status, r.Body)
	}
}

// An approved request; dave's deny races bob's repeat of the call (its
// claim). Whenever the deny succeeds the upstream receives nothing; when
// it is refused, the call has run, once.
func TestHostileDenyRacesClaim(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	won := map[int]int{}
	defer func() { t.Logf("deny outcomes over the rounds: %v", won) }()
	for i := range 12 {
		amount := float64(300 + i)
		_, id := w.pay(t, amount)
		mustStatus(t, w.vote(w.carol, id, "approve", "ok"), http.StatusOK)
		before := w.paid()
		var wg sync.WaitGroup
		var deny int
		var ran bool
		wg.Add(2)
		go func() {
			defer wg.Done()
			deny = w.vote(w.dave, id, "deny", "race").Status
		}()
		go func() {
			defer wg.Done()
			res, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": amount, "to": "ACME"}})
			ran = err == nil && !res.IsError
		}()
		wg.Wait()
		paid, status := w.paid()-before, w.status(t, id).Status
		won[deny]++
		switch {
		case deny == http.StatusOK && (paid != 0 || ran || status != approval.Denied):
			t.Errorf("round %d: the deny succeeded but the call ran (%d upstream calls, status %s)", i, paid, status)
		case deny == http.StatusConflict && (paid != 1 || !ran || status != approval.Used):
			t.Errorf("round %d: the deny lost, yet %d upstream calls, status %s", i, paid, status)
		case deny != http.StatusOK && deny != http.StatusConflict:
			t.Errorf("round %d: deny answered %d", i, deny)
		}
	}
}

// Bob's call waits for its approval; carol's approve and dave's deny race.
// Whenever the deny succeeds, the upstream receives nothing.
func TestHostileApproveRacesDenyWhileWaiting(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, func(c *config.Config) { c.ApprovalWait = 10 * time.Second })
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	for i := range 6 {
		before := w.paid()
		codes := make(chan [2]int, 1)
		w.whenPending(func(id string) {
			var wg sync.WaitGroup
			var c [2]int
			for j, v := range []struct{ key, verb string }{{w.carol, "approve"}, {w.dave, "deny"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c[j] = w.vote(v.key, id, v.verb, "race").Status
				}()
			}
			wg.Wait()
			codes <- c
		})
		res, _ := w.pay(t, float64(400+i))
		var c [2]int
		select {
		case c = <-codes:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the votes did not happen", i)
		}
		paid := w.paid() - before
		if c[1] == http.StatusOK && (paid != 0 || !res.IsError) {
			t.Errorf("round %d: deny succeeded (approve %d) but the call ran: %s", i, c[0], resultText(res))
		}
		if c[1] != http.StatusOK && paid != 1 {
			t.Errorf("round %d: deny %d, approve %d, %d upstream calls", i, c[1], c[0], paid)
		}
	}
}

// The id a held call names carries 128 bits: 26 base32 letters.
func TestHostileApprovalIDs(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	seen := map[string]bool{}
	for i := range 5 {
		_, id := w.pay(t, float64(500+i))
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimPrefix(id, "apr_")))
		if len(id) != 30 || err != nil || len(raw) != 16 || seen[id] {
			t.Fatalf("approval id %q: %d random bytes, %v", id, len(raw), err)
		}
		seen[id] = true
		mustStatus(t, w.s.Do("GET", "/api/v1/approvals/"+id, w.s.AdminKey, nil), http.StatusOK)
	}
	// Malformed ids are refused before any lookup; an old-format id is
	// still an id (not found here, not invalid).
	mustStatus(t, w.s.Do("GET", "/api/v1/approvals/apr_abcdefghijklmnopqrstuvwxy", w.s.AdminKey, nil), http.StatusBadRequest)
	mustStatus(t, w.s.Do("GET", "/api/v1/approvals/apr_abcdefghijklmnop", w.s.AdminKey, nil), http.StatusNotFound)
}
