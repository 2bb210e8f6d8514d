package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The index is filled behind the writer: sealed records are queued in
// memory and stored in large transactions by one goroutine. If the queue
// overflows (the store is slow or locked) or a transaction fails, the
// queued records are dropped and read back from the log instead: the log
// holds them all, so the index can always catch up.
const (
	maxQueued  = 1 << 16 // records
	indexChunk = 2048    // records per index transaction
)

type indexer struct {
	w       *Writer
	mu      sync.Mutex
	queue   []*Record
	behind  bool // records were left out of the queue: read them from the log
	wake    chan struct{}
	fin     chan struct{}
	done    chan struct{}
	through atomic.Uint64
	// acked is the last seq the writer handed over: acknowledged, its
	// changes committed. The index never reads the log beyond it: a record
	// logged inside a change's transaction that has not committed (and may
	// never) must not get the row that says the change happened.
	acked   atomic.Uint64
	moved   atomic.Pointer[chan struct{}] // closed (and replaced) when through advances
	failing bool                          // the last attempt failed (logged once until one succeeds)
	// cps are signed checkpoints (in the checkpoint file already) that the
	// store has yet to hold: each is saved once the index reaches it.
	cps []Checkpoint
}

// maxPendingCheckpoints bounds the checkpoints waiting for the store (one
// a second while it is locked elsewhere): past it the oldest are left out
// of the store's history; the checkpoint file still has the newest.
const maxPendingCheckpoints = 1024

func newIndexer(w *Writer, through uint64) *indexer {
	x := &indexer{w: w, wake: make(chan struct{}, 1), fin: make(chan struct{}), done: make(chan struct{})}
	x.through.Store(through)
	x.acked.Store(w.seq) // what the log held at the start: acknowledged, or reconciled before it is indexed
	ch := make(chan struct{})
	x.moved.Store(&ch)
	return x
}

// add queues sealed records, in seq order, for the index, once they are
// acknowledged.
func (x *indexer) add(recs []*Record) {
	x.mu.Lock()
	x.acked.Store(recs[len(recs)-1].Seq)
	switch {
	case x.behind:
	case len(x.queue)+len(recs) > maxQueued:
		x.queue, x.behind = nil, true
	default:
		x.queue = append(x.queue, recs...)
	}
	x.mu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// addCheckpoint queues cp for the store.
func (x *indexer) addCheckpoint(cp Checkpoint) {
	x.mu.Lock()
	if len(x.cps) == maxPendingCheckpoints {
		x.w.cfg.Logger.Warn("audit checkpoints not yet stored; the oldest is left out of the store's history", "seq", x.cps[0].Seq)
		x.cps = append(x.cps[:0], x.cps[1:]...)
	}
	x.cps = append(x.cps, cp)
	x.mu.Unlock()
	x.poke()
}

// saveCheckpoints stores the queued checkpoints the index has reached.
func (x *indexer) saveCheckpoints() error {
	if x.w.stop.Load() != nil {
		return nil
	}
	through := x.through.Load()
	for {
		x.mu.Lock()
		if len(x.cps) == 0 || x.cps[0].Seq > through {
			x.mu.Unlock()
			return nil
		}
		cp := x.cps[0]
		x.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), x.w.cfg.StoreTimeout)
		err := x.w.cfg.Store.SaveCheckpoint(ctx, cp)
		cancel()
		if err != nil {
			return err
		}
		x.mu.Lock()
		if len(x.cps) > 0 && x.cps[0].Seq == cp.Seq {
			x.cps = x.cps[1:]
		}
		x.mu.Unlock()
	}
}

func (x *indexer) run() {
	defer close(x.done)
	for {
		select {
		case <-x.wake:
		case <-x.fin:
			x.drain()
			return
		}
		err := x.step()
		if err == nil {
			err = x.saveCheckpoints()
		}
		if err == nil {
			x.recovered(x.through.Load())
		}
		if err != nil {
			x.trouble(err)
			select { // try again shortly, from the log
			case <-time.After(50 * time.Millisecond):
				x.poke()
			case <-x.fin:
				x.drain()
				return
			}
		}
	}
}

func (x *indexer) poke() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// finish makes run index what the log holds and return.
func (x *indexer) finish() { close(x.fin) }

// drain indexes until the index reaches the log's end, for no longer than
// the store timeout; the next start catches up on the rest.
func (x *indexer) drain() {
	deadline := time.Now().Add(x.w.cfg.StoreTimeout)
	for x.w.stop.Load() == nil && time.Now().Before(deadline) {
		err := x.step()
		if err == nil {
			err = x.saveCheckpoints()
		}
		if err == nil && x.through.Load() >= x.acked.Load() {
			break
		}
		if err != nil {
			x.trouble(err)
			time.Sleep(20 * time.Millisecond)
		}
	}
	if lag := x.acked.Load() - x.through.Load(); lag > 0 && x.w.stop.Load() == nil {
		x.w.cfg.Logger.Warn("audit index behind the log at stop; the next start catches up", "records", lag)
	}
}

// step indexes what is queued, or reads from the log what was dropped.
// Once the writer has stopped, it writes nothing more: the store is not
// to be touched again.
func (x *indexer) step() error {
	if x.w.stop.Load() != nil {
		return nil
	}
	x.mu.Lock()
	q, behind := x.queue, x.behind
	x.queue, x.behind = nil, false
	x.mu.Unlock()
	if behind {
		if err := x.fromLog(x.acked.Load()); err != nil {
			x.mu.Lock()
			x.queue, x.behind = nil, true // try again from the log
			x.mu.Unlock()
			return err
		}
		return nil
	}
	for len(q) > 0 {
		n := min(len(q), indexChunk)
		if err := x.store(q[:n]); err != nil {
			x.mu.Lock()
			x.queue, x.behind = nil, true
			x.mu.Unlock()
			return err
		}
		q = q[n:]
	}
	return nil
}

// store indexes recs (ascending seq); what is already indexed is skipped,
// and a gap before them is filled from the log first.
func (x *indexer) store(recs []*Record) error {
	through := x.through.Load()
	for len(recs) > 0 && recs[0].Seq <= through {
		recs = recs[1:]
	}
	if len(recs) == 0 {
		return nil
	}
	if recs[0].Seq > through+1 {
		return x.fromLog(recs[len(recs)-1].Seq)
	}
	return x.commit(recs)
}

func (x *indexer) commit(recs []*Record) error {
	if se := x.w.stop.Load(); se != nil {
		return se
	}
	ctx, cancel := context.WithTimeout(context.Background(), x.w.cfg.StoreTimeout)
	defer cancel()
	last := recs[len(recs)-1].Seq
	if err := x.w.cfg.Store.IndexRecords(ctx, recs, last); err != nil {
		return err
	}
	x.advance(last)
	return nil
}

func (x *indexer) advance(to uint64) {
	x.through.Store(to)
	next := make(chan struct{})
	close(*x.moved.Swap(&next))
	x.recovered(to)
}

// recovered ends a spell of failed attempts: the store answers again.
func (x *indexer) recovered(through uint64) {
	if x.failing {
		x.failing = false
		x.w.trouble.Store(nil)
		x.w.cfg.Logger.Info("audit index catching up again", "through", through)
	}
}

// fromLog indexes the log's records after the index's position up to upTo
// (never beyond what was acknowledged).
func (x *indexer) fromLog(upTo uint64) error {
	upTo = min(upTo, x.acked.Load())
	from := x.through.Load() + 1
	if upTo < from {
		return nil
	}
	rd, err := x.w.log.Reader(from)
	if err != nil {
		return err
	}
	chunk := make([]*Record, 0, indexChunk)
	for rd.Index() < upTo && rd.Next() {
		r, err := ParsePayload(rd.Payload())
		if err != nil {
			return fmt.Errorf("audit: log frame %d: %w", rd.Index(), err)
		}
		chunk = append(chunk, r)
		if len(chunk) == indexChunk {
			if err := x.commit(chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
	}
	if err := rd.Err(); err != nil {
		return err
	}
	if len(chunk) > 0 {
		return x.commit(chunk)
	}
	return nil
}

// trouble reports a failed attempt: a storage failure stops the writer
// (the store is fenced; nothing is safe to write); anything else (a lock
// held elsewhere) is logged once until indexing succeeds again.
func (x *indexer) trouble(err error) {
	if x.w.stop.Load() != nil {
		return // the writer has stopped and said why
	}
	var se *StorageError
	if errors.As(err, &se) {
		x.w.halt(se, 0)
		return
	}
	x.w.trouble.Store(&err)
	if !x.failing {
		x.failing = true
		x.w.cfg.Logger.Error("audit index cannot catch up with the log; queries lag until it does", "err", err,
			"behind", x.w.log.Last()-x.through.Load())
	}
}

// Indexed returns the seq up to which the index holds every record.
func (w *Writer) Indexed() uint64 { return w.idx.through.Load() }

// WaitIndexed waits until the index holds every record up to seq, ctx
// ends or the writer stops, and returns how many records it still lacks.
func (w *Writer) WaitIndexed(ctx context.Context, seq uint64) uint64 {
	for {
		ch := *w.idx.moved.Load()
		through := w.idx.through.Load()
		if through >= seq {
			return 0
		}
		if w.stop.Load() != nil {
			return seq - through
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return seq - w.idx.through.Load()
		case <-w.idx.done:
			return seq - w.idx.through.Load()
		}
	}
}

// Settle waits, for no longer than d, until the index holds every record
// acknowledged so far, and returns how many it still lacks: what a query of the
// index reports as its lag.
func (w *Writer) Settle(ctx context.Context, d time.Duration) uint64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return w.WaitIndexed(ctx, w.idx.acked.Load())
}
