package adminapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// GET /audit takes a fixed set of filters, each checked; anything else is
// refused, never ignored (a mistyped filter would widen the answer).
func TestParseQuery(t *testing.T) {
	since := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		query string
		want  audit.Query // compared when ok
		ok    bool
	}{
		{"", audit.Query{Limit: audit.DefaultLimit}, true},
		{"user=bob&event=user-create&outcome=denied&request_id=r1&target=user:eve&contains=x&limit=5&before_seq=9&since=2026-11-22T10:00:00Z",
			audit.Query{Actor: "bob", Event: "user-create", Outcome: audit.Denied, RequestID: "r1", Target: "user:eve", Contains: "x", Limit: 5, BeforeSeq: 9, Since: since}, true},
		{"outcome=error", audit.Query{Outcome: audit.Failed, Limit: audit.DefaultLimit}, true},
		{"users=bob", audit.Query{}, false},
		{"User=bob", audit.Query{}, false},
		{"event=User-Create", audit.Query{}, false},
		{"event=tool-cal", audit.Query{}, false}, // no such event: a typo would find nothing
		{"event=event-0", audit.Query{}, false},
		{"event=" + strings.Repeat("a", 65), audit.Query{}, false},
		{"outcome=failed", audit.Query{}, false},
		{"since=yesterday", audit.Query{}, false},
		{"until=2026-11-22", audit.Query{}, false},
		{"before_seq=0", audit.Query{}, false},
		{"before_seq=-1", audit.Query{}, false},
		{"limit=0", audit.Query{}, false},
		{"limit=" + strings.Repeat("9", 4), audit.Query{}, false},
		{"contains=" + strings.Repeat("a", 257), audit.Query{}, false},
	} {
		v, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseQuery(v)
		if c.ok && (err != nil || q != c.want) {
			t.Errorf("%.60s: %+v %v, want %+v", c.query, q, err, c.want)
		}
		if !c.ok && !fault.Is(err, fault.Invalid) {
			t.Errorf("%.60s: %v, want invalid", c.query, err)
		}
	}
}

// Reading the log needs read-audit, and every query is itself on record,
// the refused ones included.
func TestAuditQueryRecorded(t *testing.T) {
	f := newFixture(t)
	outsider, _ := f.keyFor(t, "eve")
	r := f.serve(t, request{method: "GET", path: "/api/v1/audit?user=admin", key: outsider})
	if d := errorOf(t, r, http.StatusForbidden); d.Code != string(fault.Forbidden) {
		t.Errorf("without read-audit: %+v", d)
	}
	if rec := f.only(t, r); rec.Event != audit.EventAuditQuery || rec.Outcome != audit.Denied || rec.Actor != "eve" || rec.Detail["user"] != "admin" {
		t.Errorf("recorded %+v", rec)
	}
	// An event no record can carry is refused, and the answer names the
	// events there are: a typo must not look like an empty log.
	r = f.do(t, "GET", "/api/v1/audit?event=tool-cal", "")
	if d := errorOf(t, r, http.StatusBadRequest); !strings.Contains(d.Message, "did you mean tool-call?") || !strings.Contains(d.Message, "authn-failure, authn-failures") {
		t.Errorf("an unknown event: %+v", d)
	}
	var page AuditPage
	r = f.do(t, "GET", "/api/v1/audit?event=authn-failure&limit=1", "")
	decodeBody(t, r, http.StatusOK, &page)
	if rec := f.only(t, r); rec.Event != audit.EventAuditQuery || rec.Outcome != audit.Success || rec.Detail["event"] != "authn-failure" {
		t.Errorf("recorded %+v", rec)
	}
}
