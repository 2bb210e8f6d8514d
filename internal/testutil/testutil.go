// Package testutil holds what tests of every package share and that
// depends on nothing of Ostiary's: waiting on a condition instead of
// sleeping, and a clock the test moves. (A store to test on is
// store/sqlite/sqlitetest; the contracts every store keeps are
// store/storetest.)
package testutil

import (
	"sync"
	"testing"
	"time"
)

// Eventually waits until cond holds, checking it every few milliseconds,
// and fails the test with msg (formatted with args) if it still does not
// after within. It is for waiting on something another goroutine or
// process does: a test that waits on a condition passes as soon as the
// condition holds, and only a broken one takes the whole of within.
func Eventually(t testing.TB, within time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+msg, append([]any{within}, args...)...)
		}
		time.Sleep(wait)
	}
}

// Clock is a clock a test sets and moves; its zero value reads the zero
// time, so start one with NewClock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock reading t (in UTC, to the microsecond: the
// precision of every store).
func NewClock(t time.Time) *Clock { return &Clock{t: t.UTC().Truncate(time.Microsecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
