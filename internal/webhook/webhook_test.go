package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/policy"
)

type recorder struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (r *recorder) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, e.Record)
	return e.Record, nil
}

func (r *recorder) wait(t *testing.T, n int) []audit.Record {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		if len(r.recs) >= n {
			out := append([]audit.Record(nil), r.recs...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
	}
	t.Fatalf("fewer than %d delivery records", n)
	return nil
}

var key = []byte("0123456789abcdef0123456789abcdef-test")

type hit struct {
	header http.Header
	body   []byte
}

// receiver answers each request with the next status of statuses (200
// once they run out) and keeps what it received.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, func() []hit) {
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, hit{r.Header.Clone(), b})
		status := 200
		if len(statuses) > 0 {
			status, statuses = statuses[0], statuses[1:]
		}
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hit { mu.Lock(); defer mu.Unlock(); return append([]hit(nil), hits...) }
}

func dispatcher(t *testing.T, rec *recorder, targets ...Target) *Dispatcher {
	d, err := New(Config{Targets: targets, Key: key, Auditor: rec, Logger: slog.New(slog.DiscardHandler), Now: time.Now,
		Backoff: 10 * time.Millisecond, Attempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

var held = approval.Approval{ID: "apr_abcdefghijklmnop", Status: approval.Pending, Requester: "bob", Tool: "shop.pay_invoice", ToolVersion: 1,
	ArgsSHA256: "ab12", Args: json.RawMessage(`{"amount":25000,"iban":"DE89370400440532013000"}`),
	Decision:  policy.Decision{Effect: policy.Approve, Score: 85, Reasons: []string{"large-irreversible-payment"}, Policy: 3, Requires: []policy.Requirement{{Approvers: 2, Role: "finance-lead"}}},
	ExpiresAt: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}

// A delivery is signed, carries the approval without its arguments, and
// is retried after 5xx and 429 until it is taken.
func TestDeliverySignedAndRetried(t *testing.T) {
	srv, hits := receiver(t, 500, 429)
	rec := &recorder{}
	d := dispatcher(t, rec, Target{URL: srv.URL, Format: FormatJSON})
	d.Notify(Requested, held)
	recs := rec.wait(t, 1)
	if recs[0].Outcome != audit.Success || recs[0].Detail["attempts"] != 3 || recs[0].Event != EventDelivery || recs[0].Target != "approval:"+held.ID {
		t.Errorf("delivery record: %+v", recs[0])
	}
	hs := hits()
	if len(hs) != 3 {
		t.Fatalf("%d attempts", len(hs))
	}
	h := hs[2]
	if !Verify(key, h.header.Get(HeaderTimestamp), h.body, h.header.Get(HeaderSignature)) || h.header.Get(HeaderEvent) != Requested {
		t.Errorf("signature or event headers wrong: %v", h.header)
	}
	if Verify([]byte("another key, also at least 32 bytes!"), h.header.Get(HeaderTimestamp), h.body, h.header.Get(HeaderSignature)) {
		t.Error("a signature verifies under another key")
	}
	if Verify(key, h.header.Get(HeaderTimestamp), append(h.body, ' '), h.header.Get(HeaderSignature)) {
		t.Error("a signature verifies over another body")
	}
	var ev Event
	if err := json.Unmarshal(h.body, &ev); err != nil || ev.Event != Requested || ev.Approval.ID != held.ID || ev.Approval.RiskScore != 85 ||
		ev.Approval.Needs[0] != "2 approver(s) with role finance-lead" {
		t.Errorf("payload: %s", h.body)
	}
	if strings.Contains(string(h.body), "DE89") || strings.Contains(string(h.body), "25000") {
		t.Errorf("the payload carries the arguments: %s", h.body)
	}
}

// A 4xx other than 429 is not retried; attempts run out on a receiver
// that keeps failing; both end on record as failed, naming the host only.
func TestDeliveryFailures(t *testing.T) {
	bad, badHits := receiver(t, 400)
	down, downHits := receiver(t, 503, 503, 503, 503, 503)
	rec := &recorder{}
	d := dispatcher(t, rec, Target{URL: bad.URL + "/T000/secret-path", Format: FormatJSON}, Target{URL: down.URL, Format: FormatJSON})
	d.Notify(Expired, held)
	recs := rec.wait(t, 2)
	for _, r := range recs {
		if r.Outcome != audit.Failed || r.Reason != "webhook-undelivered" {
			t.Errorf("record: %+v", r)
		}
		b, _ := json.Marshal(r.Detail)
		if strings.Contains(string(b), "secret-path") {
			t.Errorf("the record holds the webhook path: %s", b)
		}
	}
	if len(badHits()) != 1 || len(downHits()) != 4 {
		t.Errorf("attempts: 400 → %d, 503 → %d", len(badHits()), len(downHits()))
	}
}

func TestSlackFormat(t *testing.T) {
	srv, hits := receiver(t)
	rec := &recorder{}
	d := dispatcher(t, rec, Target{URL: srv.URL, Format: FormatSlack})
	d.Notify(Requested, held)
	rec.wait(t, 1)
	var msg map[string]string
	if err := json.Unmarshal(hits()[0].body, &msg); err != nil || len(msg) != 1 ||
		!strings.Contains(msg["text"], "bob asks to call shop.pay_invoice (risk 85/100") || !strings.Contains(msg["text"], held.ID) {
		t.Errorf("slack payload: %s", hits()[0].body)
	}
}

// After Close, Notify neither blocks nor panics; the event is on record
// as undelivered.
func TestNotifyAfterClose(t *testing.T) {
	srv, _ := receiver(t)
	rec := &recorder{}
	d := dispatcher(t, rec, Target{URL: srv.URL, Format: FormatJSON})
	d.Close()
	d.Notify(Decided, held)
	if r := rec.wait(t, 1); r[0].Outcome != audit.Failed {
		t.Errorf("%+v", r[0])
	}
}
