package audit

import "sync/atomic"

// Feed is a copy of the records the writer commits, for a consumer that
// must never slow it (governance alerts): records are handed over, in seq
// order, only once durable, into a bounded queue; when the queue is full
// they are dropped and counted, never waited for. A consumer reads C and
// must not modify what it receives.
type Feed struct {
	c       chan *Record
	dropped atomic.Uint64
}

// C delivers the records.
func (f *Feed) C() <-chan *Record { return f.c }

// Dropped is how many records did not fit in the queue.
func (f *Feed) Dropped() uint64 { return f.dropped.Load() }

// offer hands r over without waiting.
func (f *Feed) offer(r *Record) {
	select {
	case f.c <- r:
	default:
		f.dropped.Add(1)
	}
}

// Subscribe returns a Feed of every record committed from now on, queued
// up to n (at least 1).
func (w *Writer) Subscribe(n int) *Feed {
	f := &Feed{c: make(chan *Record, max(n, 1))}
	for {
		old := w.feeds.Load()
		var next []*Feed
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, f)
		if w.feeds.CompareAndSwap(old, &next) {
			return f
		}
	}
}

// publish offers committed records to every feed.
func (w *Writer) publish(recs []*Record) {
	fs := w.feeds.Load()
	if fs == nil {
		return
	}
	for _, f := range *fs {
		for _, r := range recs {
			f.offer(r)
		}
	}
}
