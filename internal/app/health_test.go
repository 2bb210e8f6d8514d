package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

type fakeAudit struct {
	stopped *audit.StorageError
	health  error
	stalled bool
}

func (f fakeAudit) Stopped() *audit.StorageError { return f.stopped }
func (f fakeAudit) Health() error                { return f.health }
func (f fakeAudit) Stalled() bool                { return f.stalled }

type fakePing func(ctx context.Context) error

func (f fakePing) Ping(ctx context.Context) error { return f(ctx) }

// Every way /readyz can fail, one at a time, each named with its part,
// state and a cause safe to show anyone who reaches the port (never the
// underlying error's text: it may hold paths and driver messages).
//
//	fault                                 | status | component | state
//	audit log stopped (disk full)         | 503    | audit-log | stopped
//	commit stuck on the disk past timeout | 503    | audit-log | stalled
//	last commit/probe failed (locked)     | 503    | audit-log | failing
//	store read hits a storage failure     | 503    | audit-log | stopped
//	store read gets no answer in time     | 503    | store     | unreachable
//	all well                              | 200    | —         | —
func TestReadinessNamesWhatIsDown(t *testing.T) {
	t.Parallel()
	secret := "/var/lib/ostiary/ostiary.db: driver said SQLITE_FULL"
	ok := fakePing(func(context.Context) error { return nil })
	hang := fakePing(func(ctx context.Context) error { <-ctx.Done(); return fault.Wrap(fault.Unavailable, "ping", ctx.Err()) })
	for _, c := range []struct {
		name                    string
		audit                   fakeAudit
		store                   pinger
		status                  int
		component, state, cause string
	}{
		{"all well", fakeAudit{}, ok, http.StatusOK, "", "", ""},
		{"audit log stopped", fakeAudit{stopped: &audit.StorageError{Cause: "disk full", Err: errors.New(secret)}}, ok,
			http.StatusServiceUnavailable, "audit-log", "stopped", "disk full"},
		{"commit stalled", fakeAudit{stalled: true}, ok, http.StatusServiceUnavailable, "audit-log", "stalled", "within the store timeout"},
		{"commits failing", fakeAudit{health: errors.New(secret)}, ok, http.StatusServiceUnavailable, "audit-log", "failing", "busy or too slow"},
		{"store storage failure", fakeAudit{}, fakePing(func(context.Context) error {
			return fault.Wrap(fault.Unavailable, "ping", &audit.StorageError{Cause: "database read-only", Err: errors.New(secret)})
		}), http.StatusServiceUnavailable, "audit-log", "stopped", "database read-only"},
		{"store unreachable", fakeAudit{}, hang, http.StatusServiceUnavailable, "store", "unreachable", "store timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := readiness{audit: c.audit, store: c.store, timeout: 20 * time.Millisecond, log: slog.New(slog.DiscardHandler)}
			w := httptest.NewRecorder()
			rd.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if strings.Contains(w.Body.String(), "SQLITE") || strings.Contains(w.Body.String(), "/var/lib") {
				t.Errorf("the body shows the underlying error: %s", w.Body)
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if c.status == http.StatusOK {
				if body["status"] != "ready" {
					t.Errorf("body %v", body)
				}
				return
			}
			if body["status"] != "unavailable" || body["component"] != c.component || body["state"] != c.state || !strings.Contains(body["cause"], c.cause) {
				t.Errorf("body %v, want %s %s (%q)", body, c.component, c.state, c.cause)
			}
			if (c.state == "stopped") != (body["action"] != "") {
				t.Errorf("action %q for state %s", body["action"], c.state)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
		})
	}
}
