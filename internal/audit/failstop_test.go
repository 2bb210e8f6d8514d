package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/audit/wal/faultfs"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/testutil"
)

// fakeStore is an audit.Store in memory (the index, the changes'
// transactions, checkpoints) whose failures the test sets: an error at the
// next transaction's begin (a lock) or commit (a failed fsync), a storage
// fault that no write reports (a deleted file), or a store that never
// answers. The log is real: a wal.Log over faultfs.
type fakeStore struct {
	mu          sync.Mutex
	rows        map[uint64]audit.Record // the index
	through     uint64
	batches     int           // AuditBatch calls, probes included
	beginErr    error         // returned by the next AuditBatch before it runs anything
	commitErr   error         // returned by the next commit, which then stores nothing
	fault       error         // StorageFault's answer
	hang        bool          // AuditBatch, IndexRecords and SaveCheckpoint wait until their context ends
	stall       chan struct{} // if set, a commit waits for it to close (an fsync stuck on the disk)
	stalled     chan struct{} // closed when a commit starts waiting on stall
	deadlines   []time.Duration
	checkpoints int
	applied     int // changes committed
}

type fakeTx struct {
	pending *[]audit.Record
}

func (t fakeTx) AppendRecord(_ context.Context, r *audit.Record) error {
	*t.pending = append(*t.pending, *r)
	return nil
}

func (t fakeTx) Step(_ context.Context, fn func() error) error {
	n := len(*t.pending)
	if err := fn(); err != nil {
		*t.pending = (*t.pending)[:n]
		return err
	}
	return nil
}

func (s *fakeStore) AuditHead(context.Context) (uint64, [32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var top uint64
	for seq := range s.rows {
		top = max(top, seq)
	}
	return top, s.rows[top].Hash, nil
}

func (s *fakeStore) AuditHashAt(_ context.Context, seq uint64) ([32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rows[seq]
	if !ok {
		return [32]byte{}, fault.New(fault.NotFound, "no record %d", seq)
	}
	return r.Hash, nil
}

func (s *fakeStore) IndexedThrough(context.Context) (uint64, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.through, s.through, nil
}

// locked waits, for a store locked elsewhere, until ctx ends.
func (s *fakeStore) locked(ctx context.Context) error {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if !hang {
		return nil
	}
	<-ctx.Done()
	return fault.Wrap(fault.Unavailable, "write", errors.New("database is locked (5)"))
}

func (s *fakeStore) IndexRecords(ctx context.Context, recs []*audit.Record, through uint64) error {
	if err := s.locked(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows = map[uint64]audit.Record{}
	}
	for _, r := range recs {
		if _, ok := s.rows[r.Seq]; !ok {
			s.rows[r.Seq] = *r
		}
	}
	s.through = max(s.through, through)
	return nil
}

func (s *fakeStore) AuditIndexed(_ context.Context, seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rows[seq]
	return ok, nil
}

func (s *fakeStore) ScanRecords(context.Context, func(*audit.Record) error) error { return nil }

func (s *fakeStore) AuditBatch(ctx context.Context, fn func(audit.Tx) error) error {
	s.mu.Lock()
	s.batches++
	hang, begin := s.hang, s.beginErr
	s.beginErr = nil
	if dl, ok := ctx.Deadline(); ok {
		s.deadlines = append(s.deadlines, time.Until(dl))
	}
	s.mu.Unlock()
	if hang { // a lock held elsewhere: wait for the deadline
		<-ctx.Done()
		return fault.Wrap(fault.Unavailable, "begin", errors.New("database is locked (5)"))
	}
	if begin != nil {
		return begin
	}
	var pending []audit.Record
	if err := fn(fakeTx{&pending}); err != nil {
		return err
	}
	s.mu.Lock()
	stall, stalled := s.stall, s.stalled
	s.stall = nil
	s.mu.Unlock()
	if stall != nil && len(pending) > 0 {
		close(stalled)
		<-stall
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.commitErr; err != nil {
		s.commitErr = nil
		return err
	}
	if s.rows == nil {
		s.rows = map[uint64]audit.Record{}
	}
	for _, r := range pending {
		s.rows[r.Seq] = r
		s.applied++
	}
	return nil
}

func (s *fakeStore) SaveCheckpoint(ctx context.Context, _ audit.Checkpoint) error {
	if err := s.locked(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.checkpoints++
	s.mu.Unlock()
	return nil
}

func (s *fakeStore) StorageFault() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

func (s *fakeStore) set(f func(s *fakeStore)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *fakeStore) count() (applied, batches, checkpoints int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied, s.batches, s.checkpoints
}

// syncBuffer is a log sink safe for the writer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type fakeEnv struct {
	w   *audit.Writer
	out *syncBuffer // the operational log
	cp  string      // the checkpoint file
	fs  *faultfs.FS // under the audit log
	log *wal.Log
}

func newFakeWriter(t *testing.T, s *fakeStore, tune func(*audit.WriterConfig)) fakeEnv {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	e := fakeEnv{out: &syncBuffer{}, cp: filepath.Join(t.TempDir(), "audit.checkpoint"), fs: faultfs.New()}
	var err error
	if e.log, err = wal.Open("/audit", wal.Options{FS: e.fs, SegmentSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close() })
	cfg := audit.WriterConfig{Log: e.log, Store: s, Signer: priv, CheckpointPath: e.cp, CheckpointEvery: time.Hour, WatchEvery: time.Hour,
		Logger: slog.New(slog.NewTextHandler(e.out, nil))}
	if tune != nil {
		tune(&cfg)
	}
	if e.w, err = audit.NewWriter(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.w.Close() })
	return e
}

func writeOne(w *audit.Writer) error {
	_, err := w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "test-event", Outcome: audit.Success}})
	return err
}

// writeChange writes a record of a change (an Entry with Apply).
func writeChange(w *audit.Writer) error {
	_, err := w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "thing-create", Outcome: audit.Success},
		Apply: func(context.Context, audit.Tx, *audit.Record) error { return nil }})
	return err
}

// A failed fsync of the log stops the writer for good: that batch and
// every later write are refused, the log is never written again (no retry
// on the same file: fsyncgate), no checkpoint attests anything more,
// Health says why, and the operational log says so once.
func TestWriterStopsForGoodOnLogError(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, nil)
	if err := writeOne(e.w); err != nil {
		t.Fatal(err)
	}
	e.fs.Inject(faultfs.Fault{Op: faultfs.OpSync, Name: ".wal", Err: syscall.EIO})
	err := writeOne(e.w)
	var se *audit.StorageError
	if !fault.Is(err, fault.Unavailable) || !errors.As(err, &se) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("the write whose fsync failed: %v", err)
	}
	writes := e.fs.Count(faultfs.OpWrite, ".wal")
	for range 20 {
		if err := writeOne(e.w); !fault.Is(err, fault.Unavailable) || !errors.As(err, &se) {
			t.Fatalf("a write after the failure: %v", err)
		}
		if err := writeChange(e.w); !fault.Is(err, fault.Unavailable) {
			t.Fatalf("a change after the failure: %v", err)
		}
	}
	if after := e.fs.Count(faultfs.OpWrite, ".wal"); after != writes || e.log.Last() != 1 {
		t.Errorf("after the failure the log was written again: %d writes → %d, last frame %d", writes, after, e.log.Last())
	}
	if applied, _, _ := s.count(); applied != 0 {
		t.Errorf("%d changes applied after the failure", applied)
	}
	h := e.w.Health()
	if !fault.Is(h, fault.Unavailable) || !strings.Contains(fault.SafeMessage(h), "audit log cannot be written") || e.w.Stopped() == nil {
		t.Errorf("health after the failure: %v (stopped %v)", h, e.w.Stopped())
	}
	e.w.Close()
	if _, _, cps := s.count(); cps != 0 {
		t.Errorf("%d checkpoints stored after the failure", cps)
	}
	if _, err := os.Stat(e.cp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a checkpoint file was written after the failure: %v", err)
	}
	if n := strings.Count(e.out.String(), "level=ERROR"); n != 1 || !strings.Contains(e.out.String(), "the audit log has stopped") {
		t.Errorf("want one error line naming the cause, got %d:\n%s", n, e.out.String())
	}
}

// A change's transaction that fails to commit for the storage after its
// record reached the log stops the writer: the change did not happen, and
// its caller hears so; the record stays in the log for the next start to
// reconcile (TestChangeLoggedButNotApplied).
func TestWriterStopsWhenAChangeCannotCommit(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, nil)
	s.set(func(s *fakeStore) {
		s.commitErr = fault.Wrap(fault.Unavailable, "commit", &audit.StorageError{Cause: "disk I/O error", Err: syscall.EIO})
	})
	if err := writeChange(e.w); !fault.Is(err, fault.Unavailable) {
		t.Fatalf("a change whose commit failed: %v", err)
	}
	if applied, _, _ := s.count(); applied != 0 || e.w.Stopped() == nil || e.log.Last() != 1 {
		t.Fatalf("applied %d, stopped %v, log ends at %d", applied, e.w.Stopped(), e.log.Last())
	}
	if err := writeOne(e.w); !fault.Is(err, fault.Unavailable) {
		t.Fatalf("a write after it: %v", err)
	}
}

// An error that is not the storage's (a lock held elsewhere, a deadline)
// fails its batch of changes only: Health reports it until the next
// commit, nothing of it is logged, and the chain goes on without a gap.
func TestWriterRetriesAfterBusyStore(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, nil)
	s.set(func(s *fakeStore) {
		s.beginErr = fault.Wrap(fault.Unavailable, "begin", errors.New("database is locked (5)"))
	})
	var se *audit.StorageError
	if err := writeChange(e.w); !fault.Is(err, fault.Unavailable) || errors.As(err, &se) {
		t.Fatalf("a change on a busy store: %v", err)
	}
	if h := e.w.Health(); !fault.Is(h, fault.Unavailable) || e.w.Stopped() != nil {
		t.Errorf("health after a busy store: %v (stopped %v)", h, e.w.Stopped())
	}
	if e.log.Last() != 0 {
		t.Fatalf("the refused change was logged: the log ends at %d", e.log.Last())
	}
	if err := writeChange(e.w); err != nil {
		t.Fatalf("the next change: %v", err)
	}
	if h := e.w.Health(); h != nil {
		t.Errorf("health after a commit: %v", h)
	}
	if applied, _, _ := s.count(); applied != 1 || e.log.Last() != 1 {
		t.Errorf("applied %d, log ends at %d; want 1, 1", applied, e.log.Last())
	}
}

// Store files deleted or replaced under the server stop the writer at the
// next batch, before it logs anything.
func TestWriterRefusesBatchOnMovedFiles(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, nil)
	if err := writeOne(e.w); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *fakeStore) {
		s.fault = &audit.StorageError{Cause: "database file ostiary.db deleted or renamed", Err: os.ErrNotExist}
	})
	if err := writeOne(e.w); !fault.Is(err, fault.Unavailable) {
		t.Fatalf("a write after the file moved: %v", err)
	}
	if se := e.w.Stopped(); se == nil || !strings.Contains(se.Cause, "deleted") {
		t.Errorf("stopped: %v", se)
	}
	if e.log.Last() != 1 {
		t.Errorf("the refused record was logged: the log ends at %d", e.log.Last())
	}
}

// A storage failure inside an entry's Apply is the store's, not the
// entry's: it is not recorded as the entry's failure, it stops the writer,
// and nothing of the batch reaches the log.
func TestWriterApplyStorageErrorStops(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, nil)
	_, err := e.w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "thing-create", Outcome: audit.Success},
		Apply: func(context.Context, audit.Tx, *audit.Record) error {
			return fault.Wrap(fault.Unavailable, "insert thing", &audit.StorageError{Cause: "disk full", Err: syscall.ENOSPC})
		}})
	if !fault.Is(err, fault.Unavailable) || e.w.Stopped() == nil {
		t.Fatalf("an apply hitting a full disk: %v (stopped %v)", err, e.w.Stopped())
	}
	if applied, _, _ := s.count(); applied != 0 || e.log.Last() != 0 {
		t.Errorf("%d applied, log ends at %d", applied, e.log.Last())
	}
}

// With no one writing, the writer still notices: a storage fault on its
// watch tick stops it, and an idle tick probes the write path.
func TestWriterWatchesIdleStore(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, func(c *audit.WriterConfig) { c.WatchEvery = 5 * time.Millisecond })
	testutil.Eventually(t, 5*time.Second, func() bool { _, b, _ := s.count(); return b > 0 }, "an idle writer never probed its store")
	if e.w.Health() != nil {
		t.Fatalf("health of an idle writer: %v", e.w.Health())
	}
	s.set(func(s *fakeStore) {
		s.fault = &audit.StorageError{Cause: "database file ostiary.db replaced", Err: errors.New("new inode")}
	})
	testutil.Eventually(t, 5*time.Second, func() bool { return e.w.Stopped() != nil }, "an idle writer missed its replaced file")
	if err := writeOne(e.w); !fault.Is(err, fault.Unavailable) {
		t.Errorf("a write after the fault: %v", err)
	}
}

// A locked store (another process holds the lock) holds a change no
// longer than the store timeout: the batch carries the deadline of its
// oldest record, the change is refused, and the writer tries again later.
// Records without changes are not held by it at all.
func TestWriterBoundsWaitOnStore(t *testing.T) {
	s := &fakeStore{}
	const timeout = 50 * time.Millisecond
	e := newFakeWriter(t, s, func(c *audit.WriterConfig) { c.StoreTimeout = timeout })
	s.set(func(s *fakeStore) { s.hang = true })
	done := make(chan error, 1)
	go func() { done <- writeChange(e.w) }()
	select {
	case err := <-done:
		if !fault.Is(err, fault.Unavailable) {
			t.Fatalf("a change on a locked store: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a change on a locked store did not return")
	}
	s.mu.Lock()
	dls := s.deadlines
	s.mu.Unlock()
	if len(dls) == 0 || dls[0] > timeout {
		t.Errorf("the batch's deadlines: %v, want one within %v", dls, timeout)
	}
	if e.w.Stopped() != nil || e.w.Health() == nil {
		t.Errorf("after a timeout: stopped %v, health %v", e.w.Stopped(), e.w.Health())
	}
	if err := writeOne(e.w); err != nil {
		t.Errorf("a record without a change while the store is locked: %v", err)
	}
	s.set(func(s *fakeStore) { s.hang = false })
	if err := writeChange(e.w); err != nil {
		t.Errorf("once the store answers: %v", err)
	}
}

// A commit stuck on the disk holds the records being committed (they may
// land), but not those queued behind it: they are refused after the store
// timeout and never stored, even once the disk answers.
func TestWriterRefusesWhatWaitsBehindAStalledCommit(t *testing.T) {
	s := &fakeStore{}
	e := newFakeWriter(t, s, func(c *audit.WriterConfig) { c.StoreTimeout = 50 * time.Millisecond })
	stall, stalled := make(chan struct{}), make(chan struct{})
	s.set(func(s *fakeStore) { s.stall, s.stalled = stall, stalled })
	first := make(chan error, 1)
	go func() { first <- writeChange(e.w) }()
	<-stalled
	if err := writeOne(e.w); !fault.Is(err, fault.Unavailable) || !strings.Contains(fault.SafeMessage(err), "not performed") {
		t.Fatalf("a write behind a stalled commit: %v", err)
	}
	if !e.w.Stalled() || e.w.Stopped() != nil {
		t.Errorf("during a stalled commit: stalled %v, stopped %v; want it reported stalled (/readyz), not stopped", e.w.Stalled(), e.w.Stopped())
	}
	close(stall)
	if err := <-first; err != nil {
		t.Fatalf("the stalled change, once the disk answered: %v", err)
	}
	if e.w.Stalled() {
		t.Error("still reported stalled once the commit finished")
	}
	if err := writeOne(e.w); err != nil {
		t.Fatalf("a write afterwards: %v", err)
	}
	var seqs []uint64
	if _, err := wal.ScanDir("/audit", e.fs, func(i uint64, p []byte) error {
		r, err := audit.ParsePayload(p)
		if err != nil {
			return err
		}
		seqs = append(seqs, r.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs, []uint64{1, 2}) {
		t.Errorf("logged records %v: the refused write must not be logged, the chain must have no gap", seqs)
	}
}

// A store locked elsewhere holds no record that does not change it: the
// writer never waits on the store itself for checkpoints (the store's copy
// is the indexer's to save) or for its probes of the write path (they run
// beside it). Before, a checkpoint and a probe each held the writer for
// the store timeout, and the records queued behind them were refused.
// Once the lock is gone, the index catches up, the checkpoints reach the
// store and Health is clear again.
func TestLockedStoreHoldsNoPlainRecord(t *testing.T) {
	s := &fakeStore{hang: true}
	e := newFakeWriter(t, s, func(c *audit.WriterConfig) {
		c.StoreTimeout, c.CheckpointEvery, c.WatchEvery = 100*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond
	})
	refused := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if err := writeOne(e.w); err != nil {
			refused++
		}
	}
	if refused > 0 {
		t.Errorf("%d records refused while the store was locked", refused)
	}
	if e.w.Health() == nil {
		t.Error("Health did not report the locked store")
	}
	if _, _, cps := s.count(); cps != 0 {
		t.Fatalf("%d checkpoints stored in a locked store", cps)
	}
	s.set(func(s *fakeStore) { s.hang = false })
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, _, cps := s.count()
		return e.w.Indexed() == e.log.Last() && cps > 0 && e.w.Health() == nil
	}, "the index, the checkpoints and Health did not recover once the lock was gone")
}
