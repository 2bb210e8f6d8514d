package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/webhook"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// receiver is an HTTP endpoint on 127.0.0.1 that records what it is sent.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type fixture struct {
	clock *testutil.Clock
	env   *sqlitetest.Env
	svc   *alert.Service
	owner *receiver // route "payments", a webhook
	sec   *receiver // route "security" (default), Slack-compatible
	mail  *mailbox  // route "oncall" (escalation), e-mail
	doc   *alert.Document
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{clock: testutil.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)), owner: newReceiver(t), sec: newReceiver(t), mail: newMailbox(t)}
	f.env = sqlitetest.New(t, f.clock.Now)
	src := fmt.Sprintf(`version: 1
default_route: security
escalate_to: oncall
escalate_after: 10m
smtp: {addr: %q, from: ostiary@example.com}
routes:
  - {name: payments, webhook: %q}
  - {name: security, slack: %q}
  - {name: oncall, email: [oncall@example.com, lead@example.com]}
rules:
  - {name: first, kind: first-use}
  - {name: egress, kind: egress}
`, f.mail.addr(), f.owner.srv.URL+"/hook/secret-path", f.sec.srv.URL+"/services/T0/B0/XXXX")
	var err error
	if f.doc, err = alert.Parse([]byte(src)); err != nil {
		t.Fatal(err)
	}
	f.svc = f.newService(t)
	return f
}

func (f *fixture) newService(t *testing.T) *alert.Service {
	svc, err := alert.New(alert.Config{Doc: f.doc, Store: f.env.Store, Auditor: f.env.Writer, Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler), Key: testKey,
		Owner: func(tool string) string {
			if strings.HasPrefix(tool, "shop.") {
				return "payments"
			}
			return ""
		}, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if err := svc.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return svc
}

func toolCall(at time.Time, user, key, tool string, outcome audit.Outcome) *audit.Record {
	return &audit.Record{Time: at, Event: "tool-call", Outcome: outcome, Actor: user, KeyID: key, Target: "tool:" + tool,
		Detail: map[string]any{"upstream": "shop"}}
}

func (f *fixture) records(t *testing.T, event string) []audit.Record {
	var out []audit.Record
	for _, r := range f.env.Records(t) {
		if r.Event == event {
			out = append(out, r)
		}
	}
	return out
}

var auditor = &authn.Principal{User: "carol", RequestID: "req-ack", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}

// An alert goes to its tool owner's route (a signed webhook), or the
// default route (Slack-compatible); unacknowledged past escalate_after it
// goes by e-mail to the escalation route, really received by an SMTP
// server; an acknowledged one does not. Raised, delivered, acknowledged
// and escalated are all on record.
func TestRouteDeliverAckEscalate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.clock.Now()
	f.svc.Observe(ctx, toolCall(now, "alice", "k1", "shop.refund", audit.Success))
	f.svc.Observe(ctx, toolCall(now, "alice", "k1", "crm.find", audit.Success))

	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.owner.all()) == 1 && len(f.sec.all()) == 1 }, "deliveries: owner %d, default %d", len(f.owner.all()), len(f.sec.all()))
	got := f.owner.all()[0]
	if !webhook.Verify(testKey, got.header.Get(webhook.HeaderTimestamp), got.body, got.header.Get(webhook.HeaderSignature)) {
		t.Errorf("the owner's delivery is not signed with the key")
	}
	var p alert.Payload
	if err := json.Unmarshal(got.body, &p); err != nil || p.Event != alert.EventRaised || p.Alert.Rule != "first" || p.Alert.Route != "payments" || p.Alert.Tool != "shop.refund" {
		t.Fatalf("owner payload %s: %+v %v", got.body, p, err)
	}
	first := p.Alert
	var slack map[string]string
	if err := json.Unmarshal(f.sec.all()[0].body, &slack); err != nil || !strings.Contains(slack["text"], "alice called crm.find for the first time") ||
		!strings.Contains(slack["text"], "ostiary alerts ack al_") {
		t.Fatalf("default route (slack) payload: %s", f.sec.all()[0].body)
	}

	// Not yet due: nothing escalates.
	if err := f.svc.Escalate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Ack(ctx, auditor, first.ID, "refund tool onboarding, expected"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * time.Minute)
	if err := f.svc.Escalate(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.mail.received()) == 1 }, "escalation mails: %d", len(f.mail.received()))
	m := f.mail.received()[0]
	if m.from != "ostiary@example.com" || strings.Join(m.to, ",") != "oncall@example.com,lead@example.com" ||
		!strings.Contains(m.data, "Subject: [ostiary] ESCALATED first: user:alice tool:crm.find") || strings.Contains(m.data, "shop.refund") {
		t.Fatalf("escalation mail: %+v", m)
	}
	// Escalation happens once.
	if err := f.svc.Escalate(ctx); err != nil {
		t.Fatal(err)
	}
	as, err := f.svc.List(ctx, auditor, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]alert.Alert{}
	for _, a := range as {
		byID[a.ID] = a
	}
	if a := byID[first.ID]; a.Status != alert.Acknowledged || a.AckedBy != "carol" || !a.EscalatedAt.IsZero() {
		t.Errorf("acknowledged alert: %+v", a)
	}
	for id, a := range byID {
		if id != first.ID && (a.Status != alert.Open || a.EscalatedAt.IsZero()) {
			t.Errorf("unacknowledged alert: %+v", a)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.records(t, alert.EventDelivered)) == 3 }, "delivery records")
	for _, r := range f.records(t, alert.EventDelivered) {
		if r.Outcome != audit.Success || r.Actor != "system" {
			t.Errorf("delivery record: %+v", r)
		}
		if b, _ := json.Marshal(r.Detail); strings.Contains(string(b), "secret-path") || strings.Contains(string(b), "XXXX") {
			t.Errorf("a delivery record holds a webhook URL's path: %s", b)
		}
	}
	if n := len(f.records(t, alert.EventRaised)); n != 2 {
		t.Errorf("%d raised records", n)
	}
	if rs := f.records(t, alert.EventEscalated); len(rs) != 1 || rs[0].Detail["route"] != "oncall" {
		t.Errorf("escalated records: %+v", rs)
	}
	if rs := f.records(t, alert.EventAcknowledged); len(rs) != 1 || rs[0].Actor != "carol" || rs[0].Target != "alert:"+first.ID || rs[0].Outcome != audit.Success {
		t.Errorf("acknowledged records: %+v", rs)
	}

	// A restart remembers what first-use has seen.
	svc2 := f.newService(t)
	svc2.Observe(ctx, toolCall(f.clock.Now(), "alice", "k1", "shop.refund", audit.Success))
	if n := len(f.records(t, alert.EventRaised)); n != 2 {
		t.Errorf("after a restart the same first use was raised again (%d raised)", n)
	}
}

// Acknowledging needs read-audit, a reason, a real alert id, and an open
// alert; each refusal is on record.
func TestAckRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.svc.Observe(ctx, toolCall(f.clock.Now(), "alice", "k1", "crm.find", audit.Success))
	as, err := f.svc.List(ctx, auditor, alert.Open, 10)
	if err != nil || len(as) != 1 {
		t.Fatalf("%v %+v", err, as)
	}
	id := as[0].ID
	nobody := &authn.Principal{User: "mallory"}
	for _, c := range []struct {
		p      *authn.Principal
		id     string
		reason string
		kind   fault.Kind
	}{
		{nobody, id, "seen", fault.Forbidden},
		{auditor, id, "  ", fault.Invalid},
		{auditor, "al_../../x", "seen", fault.Invalid},
		{auditor, "al_00000000000000000000", "seen", fault.NotFound},
	} {
		if _, err := f.svc.Ack(ctx, c.p, c.id, c.reason); !fault.Is(err, c.kind) {
			t.Errorf("%s ack %q %q: %v, want %s", c.p.User, c.id, c.reason, err, c.kind)
		}
	}
	if _, err := f.svc.Ack(ctx, auditor, id, "seen"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Ack(ctx, auditor, id, "again"); !fault.Is(err, fault.Conflict) {
		t.Errorf("second ack: %v", err)
	}
	if _, err := f.svc.List(ctx, nobody, "", 10); !fault.Is(err, fault.Forbidden) {
		t.Errorf("list without read-audit: %v", err)
	}
	var refused int
	for _, r := range f.records(t, alert.EventAcknowledged) {
		if r.Outcome != audit.Success {
			refused++
		}
	}
	if refused != 5 {
		t.Errorf("%d refused acknowledgements on record, want 5", refused)
	}
}

// A receiver that keeps failing gets every attempt, and the failure is on
// record without the URL.
func TestUndeliveredOnRecord(t *testing.T) {
	f := newFixture(t)
	f.owner.mu.Lock()
	f.owner.status = http.StatusBadGateway
	f.owner.mu.Unlock()
	f.svc.Observe(context.Background(), toolCall(f.clock.Now(), "alice", "k1", "shop.pay", audit.Success))
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.records(t, alert.EventDelivered)) == 1 }, "delivery record")
	r := f.records(t, alert.EventDelivered)[0]
	if r.Outcome != audit.Failed || r.Reason != "alert-undelivered" || fmt.Sprint(r.Detail["attempts"]) != "4" || r.Detail["error"] != "the receiver answered 502" {
		t.Errorf("%+v", r)
	}
	if len(f.owner.all()) != 4 {
		t.Errorf("%d attempts received", len(f.owner.all()))
	}
}

// What an alert tells holds hosts and tool names, never argument values:
// a URL with credentials, a path and a query in an egress tool's
// arguments reaches the owner as its host alone.
func TestAlertBodiesHoldNoArgumentValues(t *testing.T) {
	f := newFixture(t)
	r := toolCall(f.clock.Now(), "alice", "k1", "shop.export", audit.Success)
	r.Detail[alert.DetailEgressHosts] = []string{"drop.evil.example"}
	r.Detail["arguments_sha256"] = "deadbeef"
	f.svc.Observe(context.Background(), r)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.owner.all()) == 2 }, "deliveries: %d", len(f.owner.all()))
	var hosts []string
	for _, g := range f.owner.all() {
		var p alert.Payload
		if err := json.Unmarshal(g.body, &p); err != nil {
			t.Fatal(err)
		}
		if h, ok := p.Alert.Facts["host"].(string); ok {
			hosts = append(hosts, h)
		}
		if strings.Contains(string(g.body), "deadbeef") {
			t.Errorf("an alert carries the record's other detail: %s", g.body)
		}
	}
	if strings.Join(hosts, ",") != "drop.evil.example" {
		t.Errorf("egress hosts told: %v", hosts)
	}
}

// A flood the rules cannot keep up with never holds the writer: records
// beyond the feed are dropped, and how many is on record.
func TestFeedOverflowOnRecord(t *testing.T) {
	f := newFixture(t)
	feed := f.env.Writer.Subscribe(1)
	for i := range 10 {
		if _, err := f.env.Writer.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "tool-call", Outcome: audit.Denied, Actor: "mallory",
			Target: fmt.Sprintf("tool:shop.t%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.svc.Run(ctx, feed, time.Millisecond) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 5*time.Second, func() bool { return len(f.records(t, alert.EventFeedDropped)) == 1 }, "no record of the dropped records")
	if r := f.records(t, alert.EventFeedDropped)[0]; fmt.Sprint(r.Detail["records"]) != "9" || r.Outcome != audit.Failed {
		t.Errorf("%+v", r)
	}
}
