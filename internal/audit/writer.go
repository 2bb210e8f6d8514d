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

	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/fault"
)

// Store is what the writer needs from the database: the index of the log,
// the transactions that changes are applied in, and signed checkpoints.
type Store interface {
	Index
	// AuditHead returns the highest seq indexed and its hash (0 and zero
	// if none): never beyond the log's end.
	AuditHead(ctx context.Context) (uint64, [32]byte, error)
	// AuditHashAt returns the hash of indexed record seq, or a
	// fault.NotFound error.
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
	// ScanRecords streams the indexed records in seq order: a database
	// from before the log is copied into it once.
	ScanRecords(ctx context.Context, fn func(*Record) error) error
}

// Index is the queryable copy of the log, filled behind the writer: rows
// keyed by seq, so filling is idempotent.
type Index interface {
	// IndexedThrough returns the seq up to which every record is
	// indexed, and the seq up to which every change's record is known to
	// be applied or cited as not applied (kept when the index is rebuilt).
	IndexedThrough(ctx context.Context) (through, reconciled uint64, err error)
	// IndexRecords stores recs (a row already there is kept) and moves
	// the position to through, in one transaction.
	IndexRecords(ctx context.Context, recs []*Record, through uint64) error
	// AuditIndexed reports whether record seq has a row.
	AuditIndexed(ctx context.Context, seq uint64) (bool, error)
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

// Entry is one record to append, optionally together with the change it
// records. Apply runs in a store transaction with the record's index row,
// and that transaction commits only once the record is durable in the log:
// a change is never in effect without its record. If Apply fails, its
// writes are undone and the record is logged with the failure's outcome
// and reason instead. A crash after the record is logged and before the
// transaction commits leaves a record of a change that did not happen: the
// record carries detail store_change, and the next start finds it without
// its index row and appends a change-not-applied record citing it
// (DESIGN.md, "Changes and their records").
type Entry struct {
	Record
	Apply func(ctx context.Context, tx Tx, r *Record) error
}

// WriterConfig configures a Writer. Log, Store, Signer and CheckpointPath
// are required.
type WriterConfig struct {
	Log               *wal.Log // the durable copy of the chain
	Store             Store    // its index, the changes' transactions, checkpoints
	Signer            ed25519.PrivateKey
	CheckpointPath    string // the latest checkpoint, kept outside the store
	Now               func() time.Time
	Logger            *slog.Logger
	MaxBatch          int           // records per batch; default 512
	CheckpointEvery   time.Duration // default 1s
	CheckpointRecords uint64        // also checkpoint after this many records; default 10000
	// FromDatabase lets NewWriter copy the chain of a database from before
	// the log into an empty log, once (the log directory was new). Without
	// it, an empty log beside a database that holds records is refused:
	// the log was deleted.
	FromDatabase bool
	// RequireCheckpoint makes NewWriter refuse a log that does not reach
	// and match the checkpoint file (false only for a fresh data directory).
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
	// OnCheckpoint, if set, is called by the writer's goroutine with each
	// checkpoint once it is stored and in its file (anchors push it off the
	// machine). It must not block: it runs on the writer's goroutine.
	OnCheckpoint func(Checkpoint)
	// OnBatch, if set, is told of every batch committed: its records and
	// how long its commit took (metrics). It runs on the writer's
	// goroutine and must not block.
	OnBatch func(records int, took time.Duration)
}

// Writer appends records to the chain. Write blocks until its record is
// durable in the log, but many concurrent writes share one batch (one
// write and one fdatasync), so throughput does not depend on fsync latency.
// The index is filled behind it.
type Writer struct {
	cfg     WriterConfig
	log     *wal.Log
	in      chan *job
	quit    chan struct{}
	stopped chan struct{}
	idx     *indexer

	mu     sync.RWMutex // guards closed against concurrent Write/Close
	closed bool

	stop      atomic.Pointer[StorageError]  // set once: the writer has stopped for good
	trouble   atomic.Pointer[error]         // the last commit's failure, if it failed and was not a StorageError
	busySince atomic.Int64                  // unix ns since when the writer is in a call to the store; 0: not
	stalled   atomic.Pointer[chan struct{}] // closed (and replaced) when that call has lasted too long
	probing   atomic.Bool                   // a probe of the store's write path is under way (watch)
	probes    sync.WaitGroup                // the probe, waited for when the writer stops
	latest    atomic.Pointer[Checkpoint]    // the last checkpoint made by this writer
	attest    chan chan struct{}            // Attest asks for a checkpoint of everything logged
	feeds     atomic.Pointer[[]*Feed]       // consumers of committed records (Subscribe)

	// owned by the run goroutine
	seq    uint64
	prev   [32]byte
	cpSeq  uint64
	active bool // a batch ran since the last watch
	buf    []byte
	tree   *merkleTree // over records 1…seq
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

// NewWriter recovers the chain head from the log (copying a database from
// before the log into it once), checks it against the latest checkpoint,
// brings the index up to the log, records that changes logged but never
// applied (a crash between the two) did not happen, and starts the writer.
func NewWriter(ctx context.Context, cfg WriterConfig) (*Writer, error) {
	if cfg.Log == nil || cfg.Store == nil || cfg.Signer == nil || cfg.CheckpointPath == "" {
		return nil, errors.New("audit: writer needs a log, a store, a signing key and a checkpoint path")
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
	w := &Writer{cfg: cfg, log: cfg.Log, in: make(chan *job, 4*cfg.MaxBatch), quit: make(chan struct{}), stopped: make(chan struct{}),
		attest: make(chan chan struct{})}
	if err := w.migrate(ctx); err != nil {
		return nil, err
	}
	var err error
	if w.seq, w.prev, err = headOf(w.log); err != nil {
		return nil, err
	}
	if cfg.RequireCheckpoint {
		if err := w.checkLatest(); err != nil {
			return nil, err
		}
	}
	if w.tree, err = w.loadTree(); err != nil {
		return nil, err
	}
	unapplied, indexed, err := w.catchUp(ctx)
	if err != nil {
		return nil, err
	}
	w.cpSeq = w.seq
	stalled := make(chan struct{})
	w.stalled.Store(&stalled)
	w.idx = newIndexer(w, indexed)
	if cp, err := ReadCheckpointFile(w.cfg.CheckpointPath); err == nil && cp.Seq > 0 && cp.Seq <= w.seq && cp.Verify(w.PublicKey()) == nil {
		w.idx.addCheckpoint(cp) // a crash may have come between the file and the store's copy
	}
	go w.run()
	go w.reap()
	// The index goes past a change not applied only once that is logged.
	err = w.reconcile(ctx, unapplied)
	go w.idx.run()
	if err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// checkLatest refuses to extend a chain that is shorter than, or disagrees
// with, its latest checkpoint: that log was truncated or rewritten.
func (w *Writer) checkLatest() error {
	cp, err := ReadCheckpointFile(w.cfg.CheckpointPath)
	if err != nil {
		return fmt.Errorf("audit: cannot read the latest checkpoint: %w", err)
	}
	if err := cp.Verify(w.cfg.Signer.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("audit: %s: %w", w.cfg.CheckpointPath, err)
	}
	if cp.Seq > w.seq {
		return fmt.Errorf("audit: the log ends at record %d but the latest checkpoint attests record %d: the log was truncated; run 'ostiary audit verify'", w.seq, cp.Seq)
	}
	if cp.Seq == 0 {
		return nil
	}
	r, err := recordAt(w.log, cp.Seq)
	if err != nil || r.Hash != cp.Hash {
		return fmt.Errorf("audit: record %d does not match the latest checkpoint: the log was altered; run 'ostiary audit verify'", cp.Seq)
	}
	return nil
}

// Attest returns a signed checkpoint of every record logged when it is
// called, making one if the latest does not reach that far.
func (w *Writer) Attest(ctx context.Context) (Checkpoint, error) {
	if se := w.stop.Load(); se != nil {
		return Checkpoint{}, refusal(se)
	}
	want := w.log.Last()
	done := make(chan struct{})
	select {
	case w.attest <- done:
	case <-w.stopped:
		return Checkpoint{}, fault.New(fault.Unavailable, "the audit log is closed")
	case <-ctx.Done():
		return Checkpoint{}, fault.Wrap(fault.Unavailable, "audit checkpoint", ctx.Err())
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Checkpoint{}, fault.Wrap(fault.Unavailable, "audit checkpoint", ctx.Err())
	}
	cp := w.latest.Load()
	if cp == nil || cp.Seq < want {
		return Checkpoint{}, fault.New(fault.Unavailable, "no audit checkpoint could be made (see the server's log)")
	}
	return *cp, nil
}

// SignBundle signs an evidence bundle's canonical bytes with the
// checkpoint key, under the bundle's own domain (never a checkpoint's).
func (w *Writer) SignBundle(b []byte) []byte {
	return ed25519.Sign(w.cfg.Signer, append([]byte(BundleDomain), b...))
}

// BundleDomain prefixes what an evidence bundle's signature covers.
const BundleDomain = "ostiary-evidence-bundle-v1\n"

// Log is the durable copy of the chain, for reading (evidence).
func (w *Writer) Log() *wal.Log { return w.log }

// PublicKey returns the checkpoint verification key.
func (w *Writer) PublicKey() ed25519.PublicKey { return w.cfg.Signer.Public().(ed25519.PublicKey) }

// Queued is how many records wait for the writer, not yet in a batch.
func (w *Writer) Queued() int { return len(w.in) }

// Stalled reports whether the writer has been in one call to the store
// (or the log) for longer than the store timeout: a commit stuck on the
// disk. Records queued meanwhile are refused (await).
func (w *Writer) Stalled() bool {
	since := w.busySince.Load()
	return since != 0 && time.Since(time.Unix(0, since)) >= w.cfg.StoreTimeout
}

// Last returns the seq of the last record durable in the log.
func (w *Writer) Last() uint64 { return w.log.Last() }

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
	if _, ok := e.Detail[StoreChange]; ok { // the writer's own mark, set only on a change it applied
		e.Detail = maps.Clone(e.Detail)
		delete(e.Detail, StoreChange)
	}
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

// Close stops accepting records, logs what is queued, writes a final
// checkpoint, lets the index catch up (for no longer than the store
// timeout: the next start finishes it) and waits for the writer to finish.
// The log itself stays open: its owner closes it.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.stopped
		<-w.idx.done
		return nil
	}
	w.closed = true
	close(w.quit)
	w.mu.Unlock()
	<-w.stopped
	w.idx.finish()
	<-w.idx.done
	return nil
}

func (w *Writer) run() {
	defer close(w.stopped)
	defer w.probes.Wait()
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
		case done := <-w.attest:
			if cp := w.latest.Load(); cp == nil || cp.Seq < w.seq {
				w.checkpoint()
			}
			close(done)
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
