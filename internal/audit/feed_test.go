package audit_test

import (
	"testing"
)

// A feed nobody reads never holds the writer up: records beyond its
// queue are dropped and counted, and what it holds is the first records
// committed after it subscribed, in seq order.
func TestFeedNeverBlocksTheWriter(t *testing.T) {
	c := newChain(t)
	c.write(t, 2) // before: not fed
	slow := c.w.Subscribe(3)
	fast := c.w.Subscribe(100)
	c.write(t, 50) // returns although slow is never read
	if slow.Dropped() != 47 || fast.Dropped() != 0 {
		t.Fatalf("dropped: slow %d (want 47), fast %d", slow.Dropped(), fast.Dropped())
	}
	var prev uint64 = 2
	for range 3 {
		r := <-slow.C()
		if r.Seq != prev+1 || r.Event != "test-event" {
			t.Fatalf("record %d after %d: %+v", r.Seq, prev, r)
		}
		prev = r.Seq
	}
	if n := len(fast.C()); n != 50 {
		t.Errorf("the second feed holds %d records, want 50", n)
	}
}
