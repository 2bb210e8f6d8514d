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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/evidence"
	accessreview "github.com/ostiary/ostiary/internal/review"
	"github.com/ostiary/ostiary/internal/testutil"
)

// alertSink is a webhook receiver on 127.0.0.1 collecting alert payloads.
type alertSink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []alert.Payload
}

func newAlertSink(t *testing.T) *alertSink {
	s := &alertSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alert.Payload
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &p) == nil {
			s.mu.Lock()
			s.got = append(s.got, p)
			s.mu.Unlock()
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *alertSink) kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.got {
		out = append(out, p.Alert.Kind+" "+p.Alert.Subject)
	}
	return out
}

// withAlerts starts the server with an alert rules file whose routes all
// post to sink.
func withAlerts(t *testing.T, sink *alertSink) func(*config.Config) {
	path := filepath.Join(t.TempDir(), "alerts.yaml")
	src := fmt.Sprintf("version: 1\ndefault_route: security\nescalate_to: security\nroutes:\n  - {name: security, webhook: %q}\nrules:\n  - {name: first, kind: first-use}\n", sink.srv.URL)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.Alerts, c.AlertsEvery, c.WebhookBackoff = path, time.Hour, time.Millisecond }
}

func startReview(t *testing.T, s *apptest.Server, body map[string]any) accessreview.Campaign {
	t.Helper()
	r := s.Do("POST", "/api/v1/reviews", s.AdminKey, body)
	mustStatus(t, r, http.StatusCreated)
	var c accessreview.Campaign
	r.JSON(t, &c)
	return c
}

// A review campaign freezes what each identity can do and did; a
// reviewer's revocation applies at once (the identity's next call is
// refused), each revocation is on record with the attestation, and
// audit query --kind access_review tells the whole story. Nobody reviews
// themselves. Items not attested in time are recorded overdue and
// alerted. The alert rules read the records as the server writes them: a
// real call's first use reaches the alert route.
func TestAccessReviewRevocationCutsNextCall(t *testing.T) {
	t.Parallel()
	sink := newAlertSink(t)
	s := apptest.StartWith(t, withAlerts(t, sink))
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*"}, "alice", false)
	for _, u := range []string{"rita", "sam"} {
		mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": u, "roles": []string{"admin"}}), http.StatusCreated)
	}
	aliceKey, aliceKeyID := newKey(t, s, map[string]any{"user": "alice"})
	ritaKey, _ := newKey(t, s, map[string]any{"user": "rita"})
	alice, err := s.Client(t, aliceKey, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lookup := &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}}
	if res, err := alice.CallTool(ctx, lookup); err != nil || res.IsError {
		t.Fatalf("before the review: %v %+v", err, res)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return slices.Contains(sink.kinds(), "first-use user:alice tool:fin.lookup") },
		"the first use was not alerted through the running server: %v", sink.kinds())

	// A reviewer who lacks the grants to take away revokes nothing: the
	// item stays pending, the identity keeps its access.
	mustStatus(t, s.Do("POST", "/api/v1/users", s.AdminKey, map[string]any{"name": "vic", "roles": []string{"auditor"}}), http.StatusCreated)
	vicKey, _ := newKey(t, s, map[string]any{"user": "vic"})
	weak := startReview(t, s, map[string]any{"name": "weak", "scope": "user:alice", "reviewers": []string{"vic"}, "due": "14d"})
	mustStatus(t, s.Do("POST", "/api/v1/reviews/items/"+weak.Items[0].ID+"/attest", vicKey, map[string]any{"revoke": []string{"role:payer"}, "reason": "x"}), http.StatusForbidden)
	if res, err := alice.CallTool(ctx, lookup); err != nil || res.IsError {
		t.Fatalf("a refused revocation took effect: %v %+v", err, res)
	}
	r := s.Do("GET", "/api/v1/reviews/"+weak.ID, vicKey, nil)
	mustStatus(t, r, http.StatusOK)
	var w accessreview.Campaign
	r.JSON(t, &w)
	if w.Pending != 1 || w.Items[0].Status != accessreview.Pending {
		t.Fatalf("after a refused revocation: %+v", w)
	}
	mustStatus(t, s.Do("POST", "/api/v1/reviews/items/"+weak.Items[0].ID+"/attest", vicKey, map[string]any{"keep": true, "reason": "still on the team"}), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/reviews/"+weak.ID, bobKeyless(t, s), nil), http.StatusNotFound)

	c := startReview(t, s, map[string]any{"name": "Q4", "scope": "role:payer", "reviewers": []string{"rita"}, "due": "14d"})
	if len(c.Items) != 1 || c.Items[0].Identity != "alice" {
		t.Fatalf("items: %+v", c.Items)
	}
	f := c.Items[0].Facts
	if len(f.Roles) != 1 || f.Roles[0].Name != "payer" || f.Roles[0].LastUsed.IsZero() || !slices.Contains(f.Tools, "fin.lookup") ||
		len(f.Keys) != 1 || f.Keys[0].ID != aliceKeyID || len(f.AdminRights) != 0 || slices.Contains(f.Unused, "role:payer") {
		t.Errorf("alice's facts: %+v", f)
	}

	// Revoked: the next call is refused.
	item := c.Items[0].ID
	r = s.Do("POST", "/api/v1/reviews/items/"+item+"/attest", ritaKey, map[string]any{"revoke": []string{"role:payer"}, "reason": "left the payments team"})
	mustStatus(t, r, http.StatusOK)
	if res, err := alice.CallTool(ctx, lookup); err == nil && !res.IsError {
		t.Fatalf("alice's call went through after the revocation: %+v", res)
	}
	if n := len(up.Calls()); n != 2 {
		t.Errorf("the upstream saw %d calls, want 2 (before the revocation)", n)
	}
	// Once attested, no second verdict.
	mustStatus(t, s.Do("POST", "/api/v1/reviews/items/"+item+"/attest", ritaKey, map[string]any{"keep": true, "reason": "again"}), http.StatusConflict)

	// The evidence: the start, the attestation and the revocation it applied.
	r = s.Do("GET", "/api/v1/audit/access_reviews", s.AdminKey, nil)
	mustStatus(t, r, http.StatusOK)
	var page adminapi.EvidencePage
	r.JSON(t, &page)
	var ev evidence.AccessReview
	for _, x := range page.AccessReviews {
		if x.Review.ID == c.ID {
			ev = x
		}
	}
	if len(page.AccessReviews) != 2 || ev.Outcome != "complete" {
		t.Fatalf("access reviews: %+v", page.AccessReviews)
	}
	var events []string
	for _, x := range ev.Records {
		events = append(events, x.Event)
	}
	// (the second, refused verdict included)
	if !slices.Equal(events, []string{accessreview.EventStart, "user-roles-set", accessreview.EventAttest, accessreview.EventAttest}) || ev.Records[3].Outcome != audit.Failed {
		t.Errorf("evidence records: %v", events)
	}
	if it := ev.Review.Items[0]; it.Decision != accessreview.Revoke || !slices.Equal(it.Revoked, []string{"role:payer"}) || it.AttestedBy != "rita" {
		t.Errorf("evidence item: %+v", it)
	}

	// Nobody reviews themselves: rita's own item is refused to her, on
	// record; a campaign whose identity has no other reviewer is refused.
	all := startReview(t, s, map[string]any{"name": "admins", "scope": "all", "reviewers": []string{"rita", "sam"}, "due": "1h"})
	var ritaItem string
	for _, it := range all.Items {
		if it.Identity == "rita" {
			ritaItem = it.ID
		}
	}
	r = s.Do("POST", "/api/v1/reviews/items/"+ritaItem+"/attest", ritaKey, map[string]any{"keep": true, "reason": "I am fine"})
	mustStatus(t, r, http.StatusForbidden)
	if !strings.Contains(string(r.Body), "nobody reviews themselves") {
		t.Errorf("self-review refusal: %s", r.Body)
	}
	if recs := records(t, s, audit.Query{Event: accessreview.EventAttest, Actor: "rita", Outcome: audit.Denied}); len(recs) != 1 || recs[0].Target != "review-item:"+ritaItem {
		t.Errorf("self-review record: %+v", recs)
	}
	// A key revoked in a review stops authenticating at once; a grant the
	// identity does not hold is refused.
	samKey, _ := newKey(t, s, map[string]any{"user": "sam"})
	var aliceItem string
	for _, it := range all.Items {
		if it.Identity == "alice" {
			aliceItem = it.ID
		}
	}
	mustStatus(t, s.Do("POST", "/api/v1/reviews/items/"+aliceItem+"/attest", samKey, map[string]any{"revoke": []string{"role:payer"}, "reason": "x"}), http.StatusBadRequest)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", aliceKey, nil), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/reviews/items/"+aliceItem+"/attest", samKey, map[string]any{"revoke": []string{"key:" + aliceKeyID}, "reason": "unused key"}), http.StatusOK)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", aliceKey, nil), http.StatusUnauthorized)
	mustStatus(t, s.Do("POST", "/api/v1/reviews", s.AdminKey, map[string]any{"name": "self", "scope": "user:rita", "reviewers": []string{"rita"}, "due": "1d"}), http.StatusBadRequest)
	mustStatus(t, s.Do("POST", "/api/v1/reviews", s.AdminKey, map[string]any{"name": "x", "reviewers": []string{"ghost"}, "due": "1d"}), http.StatusBadRequest)
	bobKey := bobKeyless(t, s)
	mustStatus(t, s.Do("POST", "/api/v1/reviews", bobKey, map[string]any{"name": "x", "reviewers": []string{"rita"}, "due": "1d"}), http.StatusForbidden)

	// Overdue: recorded once per item, and alerted.
	s.Clock.Advance(2 * time.Hour)
	if err := s.App.Reviews().Overdue(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.App.Reviews().Overdue(ctx); err != nil {
		t.Fatal(err)
	}
	over := records(t, s, audit.Query{Event: accessreview.EventOverdue})
	pending := len(all.Items) - 1 // alice's was attested
	if len(over) != pending {
		t.Errorf("%d overdue records for %d pending items", len(over), pending)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		n := 0
		for _, k := range sink.kinds() {
			if strings.HasPrefix(k, alert.KindReviewOverdue+" review-item:") {
				n++
			}
		}
		return n == pending
	}, "overdue alerts: %v", sink.kinds())
	// Attested items are not overdue.
	for _, rec := range over {
		if rec.Detail["review"] == c.ID || rec.Target == "review-item:"+aliceItem {
			t.Errorf("an attested item was found overdue: %+v", rec)
		}
	}
}

var bobOnce sync.Map

// bobKeyless returns a key of bob, a user with no roles (created once per
// server).
func bobKeyless(t *testing.T, s *apptest.Server) string {
	t.Helper()
	if k, ok := bobOnce.Load(s); ok {
		return k.(string)
	}
	setup(t, s, "", nil, "bob", false)
	k, _ := newKey(t, s, map[string]any{"user": "bob"})
	bobOnce.Store(s, k)
	return k
}
