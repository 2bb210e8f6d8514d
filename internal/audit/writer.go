package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
)

// Store is what the writer needs from the database.
type Store interface {
	// AuditHead returns the last record's seq and hash (0 and zero if empty).
	AuditHead(ctx context.Context) (uint64, [32]byte, error)
	// AuditHashAt returns the hash of record seq, or a fault.NotFound error.
	AuditHashAt(ctx context.Context, seq uint64) ([32]byte, error)
	// AuditBatch runs fn in one transaction and commits it durably. Its
	// waits (for a lock held elsewhere) end at ctx's deadline; a begun
	// batch is not cut short.
	AuditBatch(ctx context.Context, fn func(Tx) error) error
	// SaveCheckpoint stores a signed checkpoint.
	SaveCheckpoint(ctx context.Context, c Checkpoint) error
	// StorageFault reports a failure of the storage that no write
	// reports, such as its files deleted, renamed or replaced while in
	// use: nil while all is well, else an error wrapping a *StorageError.
	// It must be cheap: the writer asks after every batch.
	StorageFault() error
}

// Tx is a batch transaction. Stores hand the same value to Apply functions,
// which type-assert it to the transactional interface their domain declares.
type Tx interface {
	// AppendRecord inserts a sealed record.
	AppendRecord(ctx context.Context, r *Record) error
	// Step runs fn inside a savepoint: if fn fails, everything it wrote is
	// undone and its error returned. If the undo itself fails, the error
	// wraps ErrTxBroken and the whole batch must be abandoned.
	Step(ctx context.Context, fn func() error) error
}

// ErrTxBroken marks a transaction that can no longer be trusted.
var ErrTxBroken = errors.New("audit: transaction broken")

// Entry is one record to append, optionally together with the action it
// records. Apply runs in the same transaction as the record: either both are
// stored or neither is. If Apply fails, its writes are undone and the record
// is stored with the failure's outcome and reason instead.
type Entry struct {
	Record
	Apply func(ctx context.Context, tx Tx, r *Record) error
}

// WriterConfig configures a Writer. Store, Signer and CheckpointPath are
// required.
type WriterConfig struct {
	Store             Store
	Signer            ed25519.PrivateKey
	CheckpointPath    string // the latest checkpoint, kept outside the store
	Now               func() time.Time
	Logger            *slog.Logger
	MaxBatch          int           // records per transaction; default 512
	CheckpointEvery   time.Duration // default 1s
	CheckpointRecords uint64        // also checkpoint after this many records; default 10000
	// RequireCheckpoint makes NewWriter refuse a store whose chain does not
	// reach and match the checkpoint file (false only for a fresh store).
	RequireCheckpoint bool
	// Scrub, if set, rewrites every string of a record's reason, target
	// and detail before it is sealed: credentials never reach the chain.
	Scrub func(string) string
	// StoreTimeout bounds every wait on the store: a record not committed
	// within it of being queued is refused (fault.Unavailable); default 2s.
	StoreTimeout time.Duration
	// WatchEvery is how often the store is asked for a StorageFault and,
	// when no batch ran meanwhile, its write path probed; default 1s.
	WatchEvery time.Duration
}

// Writer appends records to the chain. Write blocks until its record is
// durably committed, but many concurrent writes share one transaction (group
// commit), so throughput does not depend on fsync latency.
type Writer struct {
	cfg     WriterConfig
	in      chan *job
	quit    chan struct{}
	stopped chan struct{}

	mu     sync.RWMutex // guards closed against concurrent Write/Close
	closed bool

	stop      atomic.Pointer[StorageError]  // set once: the writer has stopped for good
	trouble   atomic.Pointer[error]         // the last commit's failure, if it failed and was not a StorageError
	busySince atomic.Int64                  // unix ns since when the writer is in a call to the store; 0: not
	stalled   atomic.Pointer[chan struct{}] // closed (and replaced) when that call has lasted too long

	// owned by the run goroutine
	seq    uint64
	prev   [32]byte
	cpSeq  uint64
	broken error // set when the head could not be reloaded after a failure
	active bool  // a batch ran since the last watch
}

type job struct {
	entry  Entry
	queued time.Time
	state  atomic.Int32 // jobQueued, then jobTaken by the writer or jobAbandoned by its waiter
	done   chan result
}

type result struct {
	rec Record
	err error
}

// NewWriter loads the chain head, checks it against the latest checkpoint
// and starts the writer goroutine.
func NewWriter(ctx context.Context, cfg WriterConfig) (*Writer, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.CheckpointPath == "" {
		return nil, errors.New("audit: writer needs a store, a signing key and a checkpoint path")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	if cfg.CheckpointRecords == 0 {
		cfg.CheckpointRecords = 10000
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 2 * time.Second
	}
	if cfg.WatchEvery <= 0 {
		cfg.WatchEvery = time.Second
	}
	w := &Writer{cfg: cfg, in: make(chan *job, 4*cfg.MaxBatch), quit: make(chan struct{}), stopped: make(chan struct{})}
	var err error
	if w.seq, w.prev, err = cfg.Store.AuditHead(ctx); err != nil {
		return nil, fmt.Errorf("audit: read chain head: %w", err)
	}
	if cfg.RequireCheckpoint {
		if err := w.checkLatest(ctx); err != nil {
			return nil, err
		}
	}
	w.cpSeq = w.seq
	stalled := make(chan struct{})
	w.stalled.Store(&stalled)
	go w.run()
	go w.reap()
	return w, nil
}

// checkLatest refuses to extend a chain that is shorter than, or disagrees
// with, its latest checkpoint: that chain was truncated or rewritten.
func (w *Writer) checkLatest(ctx context.Context) error {
	cp, err := ReadCheckpointFile(w.cfg.CheckpointPath)
	if err != nil {
		return fmt.Errorf("audit: cannot read the latest checkpoint: %w", err)
	}
	if err := cp.Verify(w.cfg.Signer.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("audit: %s: %w", w.cfg.CheckpointPath, err)
	}
	if cp.Seq > w.seq {
		return fmt.Errorf("audit: the chain ends at record %d but the latest checkpoint attests record %d: the log was truncated; run 'ostiary audit verify'", w.seq, cp.Seq)
	}
	h, err := w.cfg.Store.AuditHashAt(ctx, cp.Seq)
	if err != nil || h != cp.Hash {
		return fmt.Errorf("audit: record %d does not match the latest checkpoint: the log was altered; run 'ostiary audit verify'", cp.Seq)
	}
	return nil
}

// PublicKey returns the checkpoint verification key.
func (w *Writer) PublicKey() ed25519.PublicKey { return w.cfg.Signer.Public().(ed25519.PublicKey) }

// Write appends e and waits until it is durable. It returns the sealed
// record and, if e.Apply failed, that error (the failure itself is then on
// record). If the record could not be stored, the error is of kind
// fault.Unavailable and nothing of e was stored. The wait is not cut short
// by ctx: a record that is being committed is never abandoned. It is
// bounded all the same: a record not committed within StoreTimeout is
// refused, and once the writer has stopped (Health) every Write is
// refused at once.
func (w *Writer) Write(ctx context.Context, e Entry) (Record, error) {
	if se := w.stop.Load(); se != nil {
		return Record{}, refusal(se)
	}
	if e.Time.IsZero() {
		e.Time = w.cfg.Now()
	}
	e.Time = normalTime(e.Time)
	sanitize(&e.Record)
	if w.cfg.Scrub != nil {
		scrubRecord(&e.Record, w.cfg.Scrub)
	}
	j := &job{entry: e, queued: time.Now(), done: make(chan result, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return Record{}, fault.New(fault.Unavailable, "the audit log is closed; the action was not performed")
	}
	if !w.enqueue(j) {
		w.mu.RUnlock()
		return Record{}, fault.New(fault.Unavailable, "the audit log is not keeping up; the action was not performed")
	}
	w.mu.RUnlock()
	return w.await(j)
}

// Close stops accepting records, commits what is queued, writes a final
// checkpoint and waits for the writer to finish.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.stopped
		return nil
	}
	w.closed = true
	close(w.quit)
	w.mu.Unlock()
	<-w.stopped
	return nil
}

func (w *Writer) run() {
	defer close(w.stopped)
	tick := time.NewTicker(w.cfg.CheckpointEvery)
	defer tick.Stop()
	watch := time.NewTicker(w.cfg.WatchEvery)
	defer watch.Stop()
	for {
		select {
		case j := <-w.in:
			w.commit(w.collect(j))
			if w.seq-w.cpSeq >= w.cfg.CheckpointRecords {
				w.checkpoint()
			}
		case <-tick.C:
			if w.seq > w.cpSeq {
				w.checkpoint()
			}
		case <-watch.C:
			w.watch()
		case <-w.quit:
			for {
				select {
				case j := <-w.in:
					w.commit(w.collect(j))
					continue
				default:
				}
				break
			}
			if w.seq > w.cpSeq {
				w.checkpoint()
			}
			return
		}
	}
}

// collect gathers first and whatever else is already queued, up to
// MaxBatch, leaving out what its waiters abandoned.
func (w *Writer) collect(first *job) []*job {
	var batch []*job
	if first.state.CompareAndSwap(jobQueued, jobTaken) {
		batch = append(batch, first)
	}
	for len(batch) < w.cfg.MaxBatch {
		select {
		case j := <-w.in:
			if j.state.CompareAndSwap(jobQueued, jobTaken) {
				batch = append(batch, j)
			}
		default:
			return batch
		}
	}
	return batch
}

func (w *Writer) commit(batch []*job) {
	if len(batch) == 0 {
		return
	}
	if se := w.stop.Load(); se != nil {
		w.fail(batch, se)
		return
	}
	w.active = true
	w.busy()
	defer w.idle()
	// The batch is committed independently of any caller's context; it
	// must begin within the store timeout of its oldest record's arrival.
	ctx, cancel := context.WithDeadline(context.Background(), w.deadline(batch[0]))
	defer cancel()
	if w.broken != nil {
		if err := w.reloadHead(ctx); err != nil {
			w.refuse(batch, err)
			return
		}
	}
	results := make([]result, len(batch))
	var seq uint64
	var prev [32]byte
	// The deadline bounds the waits (for the connection, for the lock);
	// a batch that has begun is not cut short.
	err := w.cfg.Store.AuditBatch(ctx, func(tx Tx) error {
		seq, prev = w.seq, w.prev
		for i, j := range batch {
			rec, applyErr, err := w.append(context.Background(), tx, j.entry, seq+1, prev)
			if err != nil {
				return err
			}
			seq, prev = rec.Seq, rec.Hash
			results[i] = result{rec, applyErr}
		}
		return nil
	})
	// A batch committed to files that were deleted or replaced meanwhile
	// is not durable where anyone will look: it is not acknowledged.
	if ferr := w.cfg.Store.StorageFault(); ferr != nil {
		err = ferr
	}
	if err != nil {
		w.refuse(batch, err)
		if w.stop.Load() != nil {
			return // the store is not read nor written again
		}
		rctx, rcancel := context.WithTimeout(context.Background(), w.cfg.StoreTimeout)
		defer rcancel()
		if rerr := w.reloadHead(rctx); rerr != nil {
			w.broken = rerr
		}
		return
	}
	w.note(nil, 0)
	w.seq, w.prev = seq, prev
	for i, j := range batch {
		j.done <- results[i]
	}
}

// refuse answers batch with err, which stops the writer if it is a
// storage failure; other failures are logged batch by batch.
func (w *Writer) refuse(batch []*job, err error) {
	if !w.note(err, len(batch)) && w.stop.Load() == nil {
		w.cfg.Logger.Error("audit batch not committed; actions refused", "records", len(batch), "err", err)
	}
	w.fail(batch, err)
}

// fail answers every waiter of batch that nothing of it was stored.
func (w *Writer) fail(batch []*job, err error) {
	for _, j := range batch {
		j.done <- result{err: &fault.Error{Kind: fault.Unavailable, Op: "audit write", Err: err,
			Message: "the audit log cannot be written; the action was not performed"}}
	}
}

// reloadHead re-reads the head after a failed batch: the store is the truth.
func (w *Writer) reloadHead(ctx context.Context) error {
	seq, prev, err := w.cfg.Store.AuditHead(ctx)
	if err != nil {
		return err
	}
	w.seq, w.prev, w.broken = seq, prev, nil
	return nil
}

// append stores one entry inside the batch. It returns the sealed record,
// the entry's own failure (recorded) and a transaction error (fatal to the
// batch).
func (w *Writer) append(ctx context.Context, tx Tx, e Entry, seq uint64, prev [32]byte) (Record, error, error) {
	rec := e.Record
	rec.Seq, rec.Prev = seq, prev
	if e.Apply == nil {
		// Nothing to undo: no savepoint needed. A record that cannot be
		// encoded falls through to the failure path below.
		if err := sealAndAppend(ctx, tx, &rec); err == nil {
			return rec, nil, nil
		} else if _, encErr := rec.Canonical(); encErr == nil {
			return rec, nil, err // the store failed: abandon the batch
		}
		rec = e.Record
		rec.Seq, rec.Prev = seq, prev
		rec.Detail = map[string]any{"detail_dropped": "not encodable"}
		if err := sealAndAppend(ctx, tx, &rec); err != nil {
			return rec, nil, err
		}
		return rec, nil, nil
	}
	var applyErr error
	err := tx.Step(ctx, func() error {
		if e.Apply != nil {
			if err := e.Apply(ctx, tx, &rec); err != nil {
				applyErr = err
				return err
			}
		}
		return sealAndAppend(ctx, tx, &rec)
	})
	if err == nil {
		return rec, nil, nil
	}
	var se *StorageError
	if errors.Is(err, ErrTxBroken) || errors.As(err, &se) {
		return rec, nil, err // not this entry's failure: the store's
	}
	if applyErr == nil {
		applyErr = fault.Wrap(fault.Internal, "audit append", err)
	}
	// The step was undone; record the failure in its place.
	rec = e.Record
	rec.Seq, rec.Prev = seq, prev
	rec.Outcome, rec.Reason = OutcomeOf(applyErr)
	if _, encErr := rec.Canonical(); encErr != nil {
		rec.Detail = map[string]any{"detail_dropped": "not encodable"}
	}
	if err := sealAndAppend(ctx, tx, &rec); err != nil {
		return rec, nil, err
	}
	return rec, applyErr, nil
}

// MaxFieldLen bounds each string field of a record.
const MaxFieldLen = 1024

// sanitize makes client-influenced fields safe to encode: valid UTF-8 and
// bounded, so one malformed request can never break a whole batch.
func sanitize(r *Record) {
	for _, f := range []*string{&r.Event, &r.Reason, &r.Actor, &r.KeyID, &r.RequestID, &r.Remote, &r.Target} {
		s := *f
		if len(s) > MaxFieldLen {
			s = s[:MaxFieldLen]
		}
		*f = strings.ToValidUTF8(s, "\uFFFD")
	}
}

// scrubRecord applies scrub to r's free-text fields and every string in its
// detail. The detail is copied where it changes, never edited in place: the
// caller may still hold it.
func scrubRecord(r *Record, scrub func(string) string) {
	r.Reason, r.Target = scrub(r.Reason), scrub(r.Target)
	if d, changed := scrubValue(r.Detail, scrub); changed {
		r.Detail = d.(map[string]any)
	}
}

func scrubValue(v any, scrub func(string) string) (any, bool) {
	switch v := v.(type) {
	case string:
		s := scrub(v)
		return s, s != v
	case map[string]any:
		var out map[string]any
		for k, x := range v {
			if y, changed := scrubValue(x, scrub); changed {
				if out == nil {
					out = maps.Clone(v)
				}
				out[k] = y
			}
		}
		if out != nil {
			return out, true
		}
	case []any:
		var out []any
		for i, x := range v {
			if y, changed := scrubValue(x, scrub); changed {
				if out == nil {
					out = slices.Clone(v)
				}
				out[i] = y
			}
		}
		if out != nil {
			return out, true
		}
	case []string:
		var out []string
		for i, x := range v {
			if y := scrub(x); y != x {
				if out == nil {
					out = slices.Clone(v)
				}
				out[i] = y
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

func sealAndAppend(ctx context.Context, tx Tx, r *Record) error {
	h, err := r.ComputeHash()
	if err != nil {
		return err
	}
	r.Hash = h
	return tx.AppendRecord(ctx, r)
}

// Appender appends records; *Writer is one.
type Appender interface {
	Write(ctx context.Context, e Entry) (Record, error)
}

// Refuse records that a request was refused with err and returns err; if
// the refusal cannot be recorded, the audit failure is returned instead.
func Refuse(ctx context.Context, a Appender, rec Record, err error) error {
	rec.Outcome, rec.Reason = OutcomeOf(err)
	if _, werr := a.Write(ctx, Entry{Record: rec}); werr != nil {
		return werr
	}
	return err
}

// Read runs fetch for a read that is itself evidence (who looked at what):
// a failed fetch is refused on record, a successful one is recorded before
// its result is returned — no record, no result.
func Read[T any](ctx context.Context, a Appender, rec Record, fetch func() (T, error)) (T, error) {
	var zero T
	v, err := fetch()
	if err != nil {
		return zero, Refuse(ctx, a, rec, err)
	}
	if _, err := a.Write(ctx, Entry{Record: rec}); err != nil {
		return zero, err
	}
	return v, nil
}

// OutcomeOf maps an error to the outcome and reason code it is recorded with.
func OutcomeOf(err error) (Outcome, string) {
	if err == nil {
		return Success, ""
	}
	k := fault.KindOf(err)
	if k == fault.Forbidden || k == fault.Unauthenticated {
		return Denied, string(k)
	}
	return Failed, string(k)
}

func (w *Writer) checkpoint() {
	if w.stop.Load() != nil {
		return // nothing more is attested once the store has failed
	}
	w.busy()
	defer w.idle()
	cp := Checkpoint{Seq: w.seq, Hash: w.prev, Time: w.cfg.Now()}
	cp.Sign(w.cfg.Signer)
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.StoreTimeout)
	defer cancel()
	if err := w.cfg.Store.SaveCheckpoint(ctx, cp); err != nil {
		if !w.note(err, 0) {
			w.cfg.Logger.Error("audit checkpoint not stored", "seq", cp.Seq, "err", err)
		}
		return
	}
	if err := WriteCheckpointFile(w.cfg.CheckpointPath, cp); err != nil {
		w.cfg.Logger.Error("audit checkpoint file not written", "seq", cp.Seq, "path", w.cfg.CheckpointPath, "err", err)
		return
	}
	w.cpSeq = cp.Seq
}
