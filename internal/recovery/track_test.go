package recovery

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
)

// appender keeps what reaches it; fail makes it refuse.
type appender struct {
	mu   sync.Mutex
	recs []audit.Record
	fail bool
}

func (a *appender) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return audit.Record{}, errors.New("disk full")
	}
	e.Record.Seq = uint64(len(a.recs) + 1)
	a.recs = append(a.recs, e.Record)
	return e.Record, nil
}

func (a *appender) count() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.recs) }

// The tracker counts the decisions on record that wait for an outcome:
// not the ones that failed to be written, nor those that need none; an
// outcome that could not be written leaves its decision open. Once
// stopped, it refuses decisions that would send a call upstream and
// passes everything else, outcomes included.
func TestTracker(t *testing.T) {
	a := &appender{}
	tr := Track(a)
	w := func(r audit.Record) error { _, err := tr.Write(ctx, audit.Entry{Record: r}); return err }
	call := rec(0, govern.EventToolCall, audit.Success, "r1", "tool:crm.lookup", nil)
	result := rec(0, govern.EventToolResult, audit.Success, "r1", "tool:crm.lookup", map[string]any{"decision_seq": uint64(1)})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w(call))
	must(w(rec(0, govern.EventToolCall, audit.Denied, "r2", "tool:crm.lookup", nil)))
	must(w(rec(0, govern.EventToolCall, audit.Success, "r3", "tool:crm.lookup", map[string]any{"parked": true})))
	must(w(rec(0, audit.EventUserCreate, audit.Success, "r4", "user:bob", nil)))
	if n := tr.open.Load(); n != 1 {
		t.Errorf("%d open after one call under way, want 1", n)
	}
	must(w(result))
	a.fail = true
	if w(call) == nil {
		t.Fatal("a failed write succeeded")
	}
	if n := tr.open.Load(); n != 0 {
		t.Errorf("%d open after the call ended and a decision failed to be written, want 0", n)
	}
	a.fail = false
	must(w(call))
	a.fail = true
	w(result)
	a.fail = false
	if n := tr.Stop(); n != 1 {
		t.Errorf("stopped with %d open, want 1 (an outcome that could not be written)", n)
	}
	before := a.count()
	if err := w(call); err == nil {
		t.Error("a decision to go upstream was written after the stop")
	}
	if a.count() != before {
		t.Error("the refused decision reached the log")
	}
	must(w(result)) // a call under way still ends on record
	must(w(rec(0, govern.EventToolCall, audit.Denied, "r5", "tool:crm.lookup", nil)))
	must(w(rec(0, audit.EventServerStop, audit.Success, "", "", nil)))
}

// A stop that comes between a decision being counted and written finds
// it counted (and the decision is refused): a stop that says 0 left no
// decision open, however the two interleave.
func TestTrackerStopBetween(t *testing.T) {
	a := &appender{}
	tr := Track(a)
	var n int64
	tr.counted = func() { n = tr.Stop() }
	_, err := tr.Write(ctx, audit.Entry{Record: rec(0, govern.EventToolCall, audit.Success, "r", "tool:crm.lookup", nil)})
	if written := int64(a.count()); written > n || (written == 0 && err == nil) {
		t.Errorf("%d decisions reached the log (error %v), the stop counted %d", written, err, n)
	}
}

// However decisions race with the stop, every one that reached the log
// is in the count the stop returns.
func TestTrackerStopRace(t *testing.T) {
	for range 20 {
		a := &appender{}
		tr := Track(a)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 8 {
			wg.Go(func() {
				<-start
				for range 50 {
					tr.Write(ctx, audit.Entry{Record: rec(0, govern.EventToolCall, audit.Success, "r", "tool:crm.lookup", map[string]any{"i": i})})
				}
			})
		}
		close(start)
		n := tr.Stop()
		wg.Wait()
		if written := a.count(); int64(written) > n {
			t.Fatalf("%d decisions reached the log, the stop counted %d", written, n)
		}
	}
}
