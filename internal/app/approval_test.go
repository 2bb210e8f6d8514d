package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/evidence"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/webhook"
)

var approvalIDRE = regexp.MustCompile(`apr_[a-z2-7]{26}`)

type approvalWorld struct {
	s                  *apptest.Server
	up                 *apptest.Upstream
	bob                *mcp.ClientSession // requester
	bobKey, bobKey2    string
	carol, dave, robot string // approvers' keys (robot: a service account)
	eve                string // no approve grant
}

func newApprovalWorld(t *testing.T, tune func(*config.Config)) *approvalWorld {
	t.Helper()
	s := apptest.StartWith(t, tune)
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*", "approve:fin.*"}, "bob", false) // bob could approve others' payments
	setup(t, s, "approver", []string{"approve:fin.*", "discover:fin.*"}, "carol", false)
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "robot", "service": true, "roles": []string{"approver"}}), http.StatusCreated)
	setup(t, s, "", nil, "eve", false)
	w := &approvalWorld{s: s, up: up}
	w.bobKey, _ = newKey(t, s, map[string]any{"user": "bob"})
	w.bobKey2, _ = newKey(t, s, map[string]any{"user": "bob"})
	w.carol, _ = newKey(t, s, map[string]any{"user": "carol"})
	w.robot, _ = newKey(t, s, map[string]any{"user": "robot"})
	w.eve, _ = newKey(t, s, map[string]any{"user": "eve"})
	// dave holds the approver role too: two distinct people can approve.
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "dave", "roles": []string{"approver"}}), http.StatusCreated)
	w.dave, _ = newKey(t, s, map[string]any{"user": "dave"})
	var err error
	if w.bob, err = s.Client(t, w.bobKey, ""); err != nil {
		t.Fatal(err)
	}
	label(t, s, "fin.pay", policy.Labels{DataClasses: []string{"financial"}, Irreversible: true})
	return w
}

func (w *approvalWorld) pay(t *testing.T, amount float64) (*mcp.CallToolResult, string) {
	t.Helper()
	res, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": amount, "to": "ACME"}})
	if err != nil {
		t.Fatal(err)
	}
	return res, approvalIDRE.FindString(resultText(res))
}

func (w *approvalWorld) vote(key, id, verb, reason string) apptest.Response {
	return w.s.Do("POST", "/api/v1/approvals/"+id+"/"+verb, key, adminapi.ApprovalDecision{Reason: reason})
}

func (w *approvalWorld) status(t *testing.T, id string) approval.Approval {
	t.Helper()
	var a approval.Approval
	r := w.s.Do("GET", "/api/v1/approvals/"+id, w.s.AdminKey, nil)
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &a)
	return a
}

// whenPending runs act, in the background, on the first request carol
// sees pending (polling for up to 5 s): a decision made while a call waits.
func (w *approvalWorld) whenPending(act func(id string)) {
	go func() {
		for range 100 {
			var l adminapi.ApprovalList
			r := w.s.Do("GET", "/api/v1/approvals?status=pending", w.carol, nil)
			if json.Unmarshal(r.Body, &l) == nil && len(l.Approvals) == 1 {
				act(l.Approvals[0].ID)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func (w *approvalWorld) paid() int {
	n := 0
	for _, c := range w.up.Calls() {
		if c.Tool == "pay" {
			n++
		}
	}
	return n
}

// The whole life of a held payment: nothing reaches the upstream before
// approval; the requester can never approve (through any key), nor can a
// service account or someone without the grant; two distinct people are
// needed; a changed argument is not covered; the identical call runs once;
// a replay is held again.
func TestApprovalLifecycle(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	res, id := w.pay(t, 25000)
	if !res.IsError || id == "" || !strings.Contains(resultText(res), "large-irreversible-payment") || w.paid() != 0 {
		t.Fatalf("held call: %s (paid %d)", resultText(res), w.paid())
	}
	a := w.status(t, id)
	if a.Status != approval.Pending || a.Requester != "bob" || a.Tool != "fin.pay" || string(a.Args) != `{"amount":25000,"to":"ACME"}` ||
		len(a.Decision.Requires) != 2 || a.Decision.Requires[0].Approvers != 2 {
		t.Fatalf("request: %+v", a)
	}
	// The same call again joins the same request.
	if _, id2 := w.pay(t, 25000); id2 != id {
		t.Errorf("identical held call made a second request %s", id2)
	}
	// Segregation of duties.
	for _, c := range []struct {
		who, key string
		status   int
	}{{"bob", w.bobKey, 403}, {"bob's other key", w.bobKey2, 403}, {"a service account", w.robot, 403}, {"eve", w.eve, 403}} {
		if r := w.vote(c.key, id, "approve", "looks fine"); r.Status != c.status {
			t.Errorf("%s approving: %d %s", c.who, r.Status, r.Body)
		}
	}
	mustStatus(t, w.vote(w.carol, id, "approve", ""), http.StatusBadRequest) // a reason is mandatory
	mustStatus(t, w.vote(w.carol, id, "approve", "invoice INV-7 checked"), http.StatusOK)
	if a := w.status(t, id); a.Status != approval.Pending || len(a.Votes) != 1 {
		t.Fatalf("after one of two approvals: %+v", a)
	}
	mustStatus(t, w.vote(w.carol, id, "approve", "again"), http.StatusConflict) // one vote per person
	if res, _ := w.pay(t, 25000); !res.IsError || w.paid() != 0 {
		t.Fatal("ran with one of two approvals")
	}
	mustStatus(t, w.vote(w.dave, id, "approve", "second pair of eyes"), http.StatusOK)
	if a := w.status(t, id); a.Status != approval.Approved {
		t.Fatalf("after two approvals: %+v", a)
	}
	// Another argument is another call.
	if res, other := w.pay(t, 25001); !res.IsError || other == id || w.paid() != 0 {
		t.Fatalf("argument swap: %s", resultText(res))
	}
	// The identical call runs, once.
	if res, _ := w.pay(t, 25000); res.IsError || w.paid() != 1 {
		t.Fatalf("approved call: %s", resultText(res))
	}
	if a := w.status(t, id); a.Status != approval.Used || a.UsedAt.IsZero() {
		t.Errorf("after use: %+v", a)
	}
	rec := callRecord(t, w.s, "fin.pay")
	if rec.Outcome != audit.Success || rec.Detail["approval"] != id || rec.Detail["decision"] != "approve" {
		t.Errorf("decision record of the approved call: %+v", rec)
	}
	if res, again := w.pay(t, 25000); !res.IsError || again == id || w.paid() != 1 {
		t.Errorf("replay: %s", resultText(res))
	}
	// A service account's owner cannot approve its requests.
	mustStatus(t, w.s.Do("POST", "/api/v1/users", w.s.AdminKey, map[string]any{"name": "pay-bot", "service": true, "owner": "carol", "roles": []string{"payer"}}), http.StatusCreated)
	mustStatus(t, w.s.Do("POST", "/api/v1/users", w.s.AdminKey, map[string]any{"name": "bad-bot", "service": true, "owner": "robot"}), http.StatusBadRequest)
	mustStatus(t, w.s.Do("POST", "/api/v1/users", w.s.AdminKey, map[string]any{"name": "odd", "owner": "carol"}), http.StatusBadRequest)
	botKey, _ := newKey(t, w.s, map[string]any{"user": "pay-bot"})
	bot, err := w.s.Client(t, botKey, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err = bot.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 50, "to": "x"}})
	botReq := approvalIDRE.FindString(resultText(res))
	if err != nil || botReq == "" {
		t.Fatalf("bot's payment: %+v %v", res, err)
	}
	if r := w.vote(w.carol, botReq, "approve", "my bot"); r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "service account they own") {
		t.Errorf("owner approving their bot's request: %d %s", r.Status, r.Body)
	}
	mustStatus(t, w.vote(w.dave, botReq, "approve", "not my bot"), http.StatusOK)

	// Every step is on record.
	for ev, min := range map[string]int{approval.EventRequested: 3, approval.EventDecided: 8, approval.EventUsed: 1} {
		if n := len(records(t, w.s, audit.Query{Event: ev})); n < min {
			t.Errorf("%d %s records, want at least %d", n, ev, min)
		}
	}
	if n := len(records(t, w.s, audit.Query{Event: approval.EventDecided, Outcome: audit.Denied})); n != 5 {
		t.Errorf("%d refused votes on record, want 5", n)
	}
}

// A denied request does not run; neither does an expired one; a new tool
// version is not covered by an approval of the old one.
func TestApprovalDenyExpiryAndVersion(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	_, id := w.pay(t, 10)
	mustStatus(t, w.vote(w.carol, id, "deny", "not this supplier"), http.StatusOK)
	if a := w.status(t, id); a.Status != approval.Denied {
		t.Fatalf("denied: %+v", a)
	}
	mustStatus(t, w.vote(w.dave, id, "approve", "too late"), http.StatusConflict)
	if res, again := w.pay(t, 10); !res.IsError || again == id || w.paid() != 0 {
		t.Fatalf("after a deny: %s", resultText(res))
	}

	// Approved, then expired before use.
	_, id = w.pay(t, 11)
	mustStatus(t, w.vote(w.carol, id, "approve", "ok"), http.StatusOK)
	w.s.Clock.Advance(2 * time.Hour)
	if res, again := w.pay(t, 11); !res.IsError || again == id || w.paid() != 0 {
		t.Fatalf("expired approval used: %s", resultText(res))
	}
	// Past their expiry, pending and approved-but-unused requests are
	// settled by the sweeper, on record.
	_, pend := w.pay(t, 12)
	w.s.Clock.Advance(2 * time.Hour)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return w.status(t, pend).Status == approval.Expired && w.status(t, id).Status == approval.Expired
	}, "the sweeper did not expire the requests past their expiry")
	if p, a := w.status(t, pend), w.status(t, id); p.Status != approval.Expired || a.Status != approval.Expired {
		t.Fatalf("past expiry: pending one %s, approved one %s", p.Status, a.Status)
	}
	if n := len(records(t, w.s, audit.Query{Event: approval.EventExpired})); n < 3 {
		t.Errorf("%d expiries on record, want 3 or more", n)
	}

	// An approval binds the tool version.
	label(t, w.s, "fin.lookup", policy.Labels{DataClasses: []string{"pii"}, RequireApproval: true})
	lookup := func() (*mcp.CallToolResult, string) {
		res, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "C-7"}})
		if err != nil {
			t.Fatal(err)
		}
		return res, approvalIDRE.FindString(resultText(res))
	}
	_, id = lookup()
	mustStatus(t, w.vote(w.carol, id, "approve", "ok"), http.StatusOK)
	w.up.Redefine("Look up a customer, now with more fields.")
	mustStatus(t, w.s.Do("POST", "/api/v1/upstreams/fin/sync", w.s.AdminKey, nil), http.StatusOK)
	mustStatus(t, w.s.Do("POST", "/api/v1/tools/activate", w.s.AdminKey, map[string]any{"tool": "fin.lookup", "version": 2}), http.StatusOK)
	if res, again := lookup(); !res.IsError || again == id {
		t.Errorf("an approval of version 1 ran version 2: %s", resultText(res))
	}
}

// Approve and deny racing on a one-approver request: deny wins, whichever
// lands first (a deny after the approval voids it, the call not having
// used it).
func TestApprovalRace(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	for i := range 5 {
		_, id := w.pay(t, float64(100+i))
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for j, c := range []struct{ key, verb string }{{w.carol, "approve"}, {w.dave, "deny"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[j] = w.vote(c.key, id, c.verb, "race").Status
			}()
		}
		wg.Wait()
		a := w.status(t, id)
		votes := 1 // the deny; the approve too if it landed first
		if codes[0] == 200 {
			votes = 2
		}
		if codes[1] != 200 || (codes[0] != 200 && codes[0] != 409) || a.Status != approval.Denied || len(a.Votes) != votes {
			t.Errorf("race %d: codes %v, %+v", i, codes, a)
		}
	}
	if w.paid() != 0 {
		t.Errorf("a denied payment ran %d times", w.paid())
	}
}

// Two identical calls racing for one approval: exactly one runs.
func TestApprovalDoubleUseRace(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	bob2, err := w.s.Client(t, w.bobKey2, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		amount := float64(200 + i)
		_, id := w.pay(t, amount)
		mustStatus(t, w.vote(w.carol, id, "approve", "ok"), http.StatusOK)
		before := w.paid()
		var wg sync.WaitGroup
		ran := make([]bool, 2)
		for j, cs := range []*mcp.ClientSession{w.bob, bob2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": amount, "to": "ACME"}})
				ran[j] = err == nil && !res.IsError
			}()
		}
		wg.Wait()
		if ran[0] == ran[1] || w.paid() != before+1 {
			t.Errorf("round %d: ran %v, upstream paid %d times", i, ran, w.paid()-before)
		}
	}
}

// A kill switch engaged while a call waits for its approval stops it even
// when the approval comes.
func TestApprovalKilledWhileWaiting(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, func(c *config.Config) { c.ApprovalWait = 10 * time.Second })
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	w.whenPending(func(id string) {
		w.s.Do("POST", "/api/v1/killswitches", w.s.AdminKey, map[string]any{"kind": "tool", "target": "fin.pay", "reason": "incident"})
		w.vote(w.carol, id, "approve", "ok")
	})
	_, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 7, "to": "x"}})
	if err == nil || w.paid() != 0 {
		t.Errorf("a call approved after its tool was killed ran: %v (paid %d)", err, w.paid())
	}
}

// A denied request says so to the waiting call.
func TestApprovalDeniedWhileWaiting(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, func(c *config.Config) { c.ApprovalWait = 10 * time.Second })
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	w.whenPending(func(id string) { w.vote(w.carol, id, "deny", "no") })
	start := time.Now()
	res, id := w.pay(t, 9)
	if !res.IsError || !strings.Contains(resultText(res), "Approval request "+id+" was denied") || time.Since(start) > 8*time.Second || w.paid() != 0 {
		t.Errorf("denied while waiting: %s after %s", resultText(res), time.Since(start))
	}
}

// A held call waits for its approval and runs when it comes in time; the
// client hears progress meanwhile; approval_status shows the caller their
// own requests only.
func TestApprovalWaitAndStatusTool(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, func(c *config.Config) { c.ApprovalWait = 10 * time.Second })
	label(t, w.s, "fin.pay", policy.Labels{DataClasses: []string{"internal"}, RequireApproval: true})
	var progress []string
	var mu sync.Mutex
	bob, err := w.s.ClientWith(t, w.bobKey, "2025-11-25", &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, r.Params.Message)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.whenPending(func(id string) { w.vote(w.carol, id, "approve", "while it waited") })
	start := time.Now()
	params := &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 5, "to": "x"}}
	params.SetProgressToken("p1")
	res, err := bob.CallTool(context.Background(), params)
	if err != nil || res.IsError || w.paid() != 1 || time.Since(start) > 8*time.Second {
		t.Fatalf("waited call: %+v %v (paid %d after %s)", res, err, w.paid(), time.Since(start))
	}
	mu.Lock()
	if len(progress) == 0 || !strings.Contains(progress[0], "waiting for approval apr_") {
		t.Errorf("progress: %q", progress)
	}
	mu.Unlock()

	status := func(cs *mcp.ClientSession, args map[string]any) string {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "approval_status", Arguments: args})
		if err != nil || res.IsError {
			t.Fatalf("approval_status: %+v %v", res, err)
		}
		return resultText(res)
	}
	out := status(bob, nil)
	id := approvalIDRE.FindString(out)
	if id == "" || !strings.Contains(out, `"status":"used"`) {
		t.Errorf("bob's approval_status: %s", out)
	}
	carol, err := w.s.Client(t, w.carol, "")
	if err != nil {
		t.Fatal(err)
	}
	if out := status(carol, map[string]any{"id": id}); strings.Contains(out, id) {
		t.Errorf("carol sees bob's request: %s", out)
	}
}

// Approval events reach a webhook receiver, signed with the key in the
// data directory, and each delivery is on record.
func TestApprovalWebhooks(t *testing.T) {
	t.Parallel()
	type got struct {
		event string
		ok    bool
		body  webhook.Event
	}
	ch := make(chan got, 10)
	var key []byte
	var keyMu sync.Mutex
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		keyMu.Lock()
		ok := webhook.Verify(key, r.Header.Get(webhook.HeaderTimestamp), b, r.Header.Get(webhook.HeaderSignature))
		keyMu.Unlock()
		var ev webhook.Event
		json.Unmarshal(b, &ev)
		ch <- got{r.Header.Get(webhook.HeaderEvent), ok, ev}
	}))
	defer recv.Close()
	w := newApprovalWorld(t, func(c *config.Config) { c.Webhooks = []string{recv.URL + "/hook"} })
	b, err := os.ReadFile(filepath.Join(w.s.Dir, "keys", "webhook-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyMu.Lock()
	key = []byte(strings.TrimSpace(string(b)))
	keyMu.Unlock()
	next := func() got {
		select {
		case g := <-ch:
			return g
		case <-time.After(5 * time.Second):
			t.Fatal("no webhook delivery")
		}
		return got{}
	}
	_, id := w.pay(t, 300)
	if g := next(); g.event != webhook.Requested || !g.ok || g.body.Approval.ID != id || g.body.Approval.Requester != "bob" {
		t.Errorf("requested: %+v", g)
	}
	mustStatus(t, w.vote(w.carol, id, "approve", "fine"), http.StatusOK)
	if g := next(); g.event != webhook.Decided || !g.ok || g.body.Approval.Status != "approved" {
		t.Errorf("decided: %+v", g)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return len(records(t, w.s, audit.Query{Event: webhook.EventDelivery, Outcome: audit.Success})) >= 2
	}, "the two deliveries are not on record")
	if n := len(records(t, w.s, audit.Query{Event: webhook.EventDelivery, Outcome: audit.Success})); n != 2 {
		t.Errorf("%d deliveries on record", n)
	}
}

// Evidence: each approval's story and each exception, as such, citing the
// audit records they come from.
func TestEvidenceRecords(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil)
	_, id1 := w.pay(t, 300)
	mustStatus(t, w.vote(w.bobKey2, id1, "approve", "mine"), http.StatusForbidden)
	mustStatus(t, w.vote(w.carol, id1, "approve", "checked"), http.StatusOK)
	if res, _ := w.pay(t, 300); res.IsError {
		t.Fatal(resultText(res))
	}
	_, id2 := w.pay(t, 301)
	mustStatus(t, w.vote(w.carol, id2, "deny", "duplicate invoice"), http.StatusOK)

	var page adminapi.EvidencePage
	r := w.s.Do("GET", "/api/v1/audit/approval_records?user=bob", w.s.AdminKey, nil)
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &page)
	if page.Kind != "approval_record" || len(page.ApprovalRecords) != 2 {
		t.Fatalf("approval records: %s", r.Body)
	}
	byID := map[string]evidence.ApprovalRecord{}
	for _, ar := range page.ApprovalRecords {
		byID[ar.Approval.ID] = ar
	}
	a1, a2 := byID[id1], byID[id2]
	events := func(refs []evidence.Ref) []string {
		var out []string
		for _, x := range refs {
			out = append(out, x.Event+"/"+string(x.Outcome))
		}
		return out
	}
	if a1.Outcome != "executed" || a1.Execution == nil || a1.Execution.Outcome != audit.Success ||
		!slices.Equal(events(a1.Records), []string{"approval-requested/success", "approval-decided/denied", "approval-decided/success", "approval-used/success"}) ||
		len(a1.Approval.Votes) != 1 || a1.Approval.Votes[0].Reason != "checked" {
		t.Errorf("approval record 1: %+v", a1)
	}
	if a2.Outcome != "denied" || a2.Execution != nil || len(a2.Records) != 2 {
		t.Errorf("approval record 2: %+v", a2)
	}
	// Each cited record is the one in the chain.
	for _, x := range a1.Records {
		recs := records(t, w.s, audit.Query{Target: "approval:" + id1})
		found := false
		for _, rr := range recs {
			found = found || (rr.Seq == x.Seq && rr.Event == x.Event)
		}
		if !found {
			t.Errorf("cited record %d %s is not in the chain", x.Seq, x.Event)
		}
	}

	for _, q := range []string{"user=carol", "since=" + w.s.Clock.Now().Add(time.Minute).UTC().Format(time.RFC3339), "until=2020-01-01T00:00:00Z"} {
		page = adminapi.EvidencePage{}
		w.s.Do("GET", "/api/v1/audit/approval_records?"+q, w.s.AdminKey, nil).JSON(t, &page)
		if len(page.ApprovalRecords) != 0 {
			t.Errorf("approval records for %s: %d", q, len(page.ApprovalRecords))
		}
	}
	page = adminapi.EvidencePage{}
	w.s.Do("GET", "/api/v1/audit/approval_records?limit=1", w.s.AdminKey, nil).JSON(t, &page)
	if len(page.ApprovalRecords) != 1 || page.ApprovalRecords[0].Approval.ID != id2 {
		t.Errorf("newest approval record: %+v", page.ApprovalRecords)
	}

	r = w.s.Do("GET", "/api/v1/audit/exception_records?user=bob", w.s.AdminKey, nil)
	mustStatus(t, r, http.StatusOK)
	page = adminapi.EvidencePage{}
	r.JSON(t, &page)
	var held, refusedVote bool
	for _, x := range page.ExceptionRecords {
		held = held || (x.Reason == govern.ReasonHeld && strings.Contains(x.Mitigation, id2) && x.Exception == "deny")
		refusedVote = refusedVote || (x.Event == approval.EventDecided && strings.Contains(x.Mitigation, "not counted"))
	}
	if !held || !refusedVote {
		t.Errorf("exception records: %s", r.Body)
	}
	mustStatus(t, w.s.Do("GET", "/api/v1/audit/exception_records", w.carol, nil), http.StatusForbidden)
	mustStatus(t, w.s.Do("GET", "/api/v1/audit/approval_records?event=x", w.s.AdminKey, nil), http.StatusBadRequest)
}

// A held call that asks its client something continues under its one
// approval, and the answering request cannot be replayed: the upstream's
// final step runs once.
func TestApprovedContinuationRunsOnce(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", true)
	up.AddConfirm()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*"}, "bob", false)
	setup(t, s, "approver", []string{"approve:fin.*", "discover:fin.*"}, "carol", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	carol, _ := newKey(t, s, map[string]any{"user": "carol"})
	label(t, s, "fin.confirm", policy.Labels{DataClasses: []string{"financial"}, Irreversible: true, AllowElicitation: true})
	call := func(extra string) map[string]any {
		t.Helper()
		r := rpc(t, s, bob, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.confirm","arguments":{"amount":5}`+extra+`,`+
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}}`,
			modernHeaders("tools/call", "fin.confirm"))
		return rpcMessage(t, r)
	}
	id := approvalIDRE.FindString(fmt.Sprint(call("")))
	if id == "" {
		t.Fatal("the call was not held")
	}
	mustStatus(t, s.Do("POST", "/api/v1/approvals/"+id+"/approve", carol, adminapi.ApprovalDecision{Reason: "checked"}), http.StatusOK)
	res, _ := call("")["result"].(map[string]any)
	state, _ := res["requestState"].(string)
	if res["resultType"] != "input_required" || state == "" {
		t.Fatalf("approved call did not ask: %v", res)
	}
	answer := `,"inputResponses":{"user_name":{"action":"accept","content":{"name":"Bob"}}},"requestState":"` + state + `"`
	if m := call(answer); !strings.Contains(fmt.Sprint(m["result"]), "Hello, Bob! 5 confirmed.") {
		t.Fatalf("answered: %v", m)
	}
	if m := call(answer); !strings.Contains(fmt.Sprint(m["error"]), "already used") {
		t.Errorf("a replayed answer: %v", m)
	}
	confirmed := 0
	for _, c := range up.Calls() {
		if c.Tool == "confirm" && c.State == "st-1" {
			confirmed++
		}
	}
	if confirmed != 1 {
		t.Errorf("the final step ran %d times", confirmed)
	}
}
