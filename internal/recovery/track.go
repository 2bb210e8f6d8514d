package recovery

import (
	"context"
	"sync/atomic"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// Tracker is the audit.Appender the call pipeline writes through. It
// counts the decisions on record that still wait for their outcome, so
// that a stop can say whether it left any (OpenAtStop), and once stopped
// it refuses every further decision that would send a call upstream: a
// clean stop's record is then true of everything before and after it.
// Three atomic operations per call (count, look at the stop, uncount at
// the outcome); no lock.
type Tracker struct {
	w       audit.Appender
	open    atomic.Int64
	stopped atomic.Bool
	// counted, if set, runs between counting a decision and looking at
	// the stop: a test puts a Stop there.
	counted func()
}

// Track returns a Tracker writing through w.
func Track(w audit.Appender) *Tracker { return &Tracker{w: w} }

// Write appends e through the underlying appender, counting it.
func (t *Tracker) Write(ctx context.Context, e audit.Entry) (audit.Record, error) {
	if _, ok := awaits(&e.Record); ok {
		// Counted before the stop is looked at: a Stop that read the
		// count without this decision made this look see stopped.
		t.open.Add(1)
		if t.counted != nil {
			t.counted()
		}
		if t.stopped.Load() {
			t.open.Add(-1)
			return audit.Record{}, fault.New(fault.Unavailable, "the server is stopping; the call was not performed")
		}
		r, err := t.w.Write(ctx, e)
		if err != nil { // not on record
			t.open.Add(-1)
		}
		return r, err
	}
	r, err := t.w.Write(ctx, e)
	if err == nil && isOutcome[r.Event] {
		t.open.Add(-1)
	}
	return r, err
}

// Stop makes t refuse every further decision that would send a call
// upstream, and returns how many decisions on record wait for their
// outcome: calls still under way, or whose outcome could not be written.
func (t *Tracker) Stop() int64 {
	t.stopped.Store(true)
	return t.open.Load()
}
