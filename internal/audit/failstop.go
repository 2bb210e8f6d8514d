package audit

import (
	"context"
	"errors"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
)

// StorageError is a failure of the storage under the log itself: an I/O
// error, a full disk, a corrupt or read-only database, or its files
// deleted or replaced while in use. After one, what is on disk is not
// known, and writing on is unsafe: on Linux a failed fsync may drop the
// pages it could not write, and a retry can then report durable what is
// gone (PostgreSQL's "fsyncgate"). So the writer stops for good at the
// first one; a restart recovers from what is really on disk.
//
// Stores wrap such errors in a StorageError; a store that is merely busy
// or slow (locked by another process, a deadline passed) does not, and
// the writer tries again with the next batch.
type StorageError struct {
	Cause string // what failed, in a few words safe to show anyone: "disk full"
	Err   error  // the underlying error, for the operational log only
}

func (e *StorageError) Error() string {
	if e.Err == nil {
		return e.Cause
	}
	return e.Cause + ": " + e.Err.Error()
}

func (e *StorageError) Unwrap() error { return e.Err }

// Health is nil while the writer can commit. Otherwise it says why it
// cannot: a *StorageError once it has stopped for good, or the last
// failure to commit (a store locked by another process, or too slow)
// until a later commit or probe succeeds. Errors are of kind
// fault.Unavailable.
func (w *Writer) Health() error {
	if se := w.stop.Load(); se != nil {
		return &fault.Error{Kind: fault.Unavailable, Op: "audit log", Err: se, Message: "the audit log has stopped: " + se.Cause}
	}
	if p := w.trouble.Load(); p != nil {
		return &fault.Error{Kind: fault.Unavailable, Op: "audit log", Err: *p, Message: "the audit log cannot commit: the store is busy or too slow"}
	}
	return nil
}

// Stopped returns why the writer has stopped for good, or nil.
func (w *Writer) Stopped() *StorageError { return w.stop.Load() }

// refusal is what Write answers once the writer has stopped.
func refusal(se *StorageError) error {
	return &fault.Error{Kind: fault.Unavailable, Op: "audit write", Err: se,
		Message: "the audit log cannot be written; the action was not performed"}
}

// note records the outcome of a commit (or probe) for Health, and stops
// the writer if err is a storage failure. It reports whether the writer
// stopped because of err.
func (w *Writer) note(err error, records int) bool {
	if err == nil {
		if w.trouble.Load() != nil {
			w.trouble.Store(nil)
		}
		return false
	}
	var se *StorageError
	if errors.As(err, &se) {
		return w.halt(se, records)
	}
	w.trouble.Store(&err)
	return false
}

// halt stops the writer for good; only the first cause is kept and logged.
func (w *Writer) halt(se *StorageError, records int) bool {
	if !w.stop.CompareAndSwap(nil, se) {
		return false
	}
	w.cfg.Logger.Error("the audit log has stopped: every call and change is refused until a restart", "cause", se.Cause,
		"records_refused", records, "last_durable_seq", w.log.Last(), "err", se.Err)
	return true
}

// watch runs on every WatchEvery tick: it asks the store whether its files
// are still the ones it opened, and when no batch ran since the last tick,
// or the store is in trouble, it probes the write path with an empty
// transaction, so that Health reports a locked or failed store even while
// no one writes, and stops reporting it once the store answers again. The
// probe runs beside the writer, one at a time: a store locked elsewhere
// holds the probe, never the records that do not need the store.
func (w *Writer) watch() {
	if w.stop.Load() != nil {
		return
	}
	if err := w.cfg.Store.StorageFault(); err != nil {
		w.note(err, 0)
		return
	}
	if err := w.checkLog(); err != nil {
		w.note(err, 0)
		return
	}
	if w.active && w.trouble.Load() == nil {
		w.active = false
		return
	}
	w.active = false
	if !w.probing.CompareAndSwap(false, true) {
		return
	}
	w.probes.Add(1)
	go func() {
		defer w.probes.Done()
		defer w.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.StoreTimeout)
		defer cancel()
		err := w.cfg.Store.AuditBatch(ctx, func(Tx) error { return nil })
		if err == nil {
			err = w.cfg.Store.StorageFault()
		}
		if w.stop.Load() == nil {
			w.note(err, 0)
		}
	}()
}

// deadline is when the batch starting with first must have committed: the
// store timeout after first (the oldest) was queued.
func (w *Writer) deadline(first *job) time.Time { return first.queued.Add(w.cfg.StoreTimeout) }

// A job is queued until the writer takes it into a batch; a waiter who
// gave up first abandons it, and the writer leaves it out.
const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

// await waits for j's result. If the writer has been stuck in one call to
// the store for longer than the store timeout (a commit stalled on the
// disk), the reaper wakes every waiter: a job still queued is abandoned
// and refused, and nothing of it will be stored; one the writer has taken
// is being committed and is waited for: a record that may land is never
// abandoned, so its caller never hears "not performed" for an action that
// was. One ticker (the reaper's) serves every waiter: no timer per write.
func (w *Writer) await(j *job) (Record, error) {
	select {
	case r := <-j.done:
		return r.rec, r.err
	case <-*w.stalled.Load():
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return Record{}, fault.New(fault.Unavailable, "the audit log did not answer in time; the action was not performed")
		}
		r := <-j.done
		return r.rec, r.err
	}
}

// busy marks the writer as in a call to the store since now; idle ends it.
func (w *Writer) busy() { w.busySince.Store(time.Now().UnixNano()) }
func (w *Writer) idle() { w.busySince.Store(0) }

// reap runs until the writer stops: every quarter of the store timeout it
// looks whether the writer has been stuck in one call to the store for
// longer than the timeout, and if so wakes the waiters (await).
func (w *Writer) reap() {
	t := time.NewTicker(w.cfg.StoreTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			since := w.busySince.Load()
			if since == 0 || time.Since(time.Unix(0, since)) < w.cfg.StoreTimeout {
				continue
			}
			next := make(chan struct{})
			close(*w.stalled.Swap(&next))
		case <-w.stopped:
			return
		}
	}
}

// enqueue queues j, waiting for room no longer than the store timeout: a
// full queue means the store is stuck or far too slow.
func (w *Writer) enqueue(j *job) bool {
	select {
	case w.in <- j:
		return true
	default:
	}
	t := time.NewTimer(w.cfg.StoreTimeout)
	defer t.Stop()
	select {
	case w.in <- j:
		return true
	case <-t.C:
		return false
	}
}
