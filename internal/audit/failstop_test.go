package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/testutil"
)

// fakeStore is an audit.Store in memory whose failures the test sets: the
// next commit's error (a failed fsync, a lock), a storage fault that no
// write reports (a deleted file), or a store that never answers.
type fakeStore struct {
	mu          sync.Mutex
	recs        []audit.Record
	batches     int           // AuditBatch calls, probes included
	commitErr   error         // returned by the next commit, which then stores nothing
	fault       error         // StorageFault's answer
	hang        bool          // AuditBatch waits until its context ends
	stall       chan struct{} // if set, a commit waits for it to close (an fsync stuck on the disk)
	stalled     chan struct{} // closed when a commit starts waiting on stall
	deadlines   []time.Duration
	checkpoints int
}

type fakeTx struct{ pending *[]audit.Record }

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
	if len(s.recs) == 0 {
		return 0, [32]byte{}, nil
	}
	r := s.recs[len(s.recs)-1]
	return r.Seq, r.Hash, nil
}

func (s *fakeStore) AuditHashAt(_ context.Context, seq uint64) ([32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.Seq == seq {
			return r.Hash, nil
		}
	}
	return [32]byte{}, fault.New(fault.NotFound, "no record %d", seq)
}

func (s *fakeStore) AuditBatch(ctx context.Context, fn func(audit.Tx) error) error {
	s.mu.Lock()
	s.batches++
	hang := s.hang
	if dl, ok := ctx.Deadline(); ok {
		s.deadlines = append(s.deadlines, time.Until(dl))
	}
	s.mu.Unlock()
	if hang { // a lock held elsewhere: wait for the deadline
		<-ctx.Done()
		return fault.Wrap(fault.Unavailable, "begin", errors.New("database is locked (5)"))
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
	s.recs = append(s.recs, pending...)
	return nil
}

func (s *fakeStore) SaveCheckpoint(context.Context, audit.Checkpoint) error {
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

func (s *fakeStore) count() (records, batches, checkpoints int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs), s.batches, s.checkpoints
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

func newFakeWriter(t *testing.T, s *fakeStore, tune func(*audit.WriterConfig)) (*audit.Writer, *syncBuffer, string) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	log := &syncBuffer{}
	cp := filepath.Join(t.TempDir(), "audit.checkpoint")
	cfg := audit.WriterConfig{Store: s, Signer: priv, CheckpointPath: cp, CheckpointEvery: time.Hour, WatchEvery: time.Hour,
		Logger: slog.New(slog.NewTextHandler(log, nil))}
	if tune != nil {
		tune(&cfg)
	}
	w, err := audit.NewWriter(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, log, cp
}

func writeOne(w *audit.Writer) error {
	_, err := w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "test-event", Outcome: audit.Success}})
	return err
}

// A commit that fails for the storage itself (here a failed fsync) stops
// the writer for good: that batch and every later write are refused, the
// store is never tried again (no retry on the same file: fsyncgate), even
// once it would succeed, no checkpoint attests anything more, Health says
// why, and the log says so once.
func TestWriterStopsForGoodOnStorageError(t *testing.T) {
	s := &fakeStore{}
	w, log, cp := newFakeWriter(t, s, nil)
	if err := writeOne(w); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *fakeStore) {
		s.commitErr = fault.Wrap(fault.Unavailable, "commit", &audit.StorageError{Cause: "disk I/O error", Err: syscall.EIO})
	})
	err := writeOne(w)
	var se *audit.StorageError
	if !fault.Is(err, fault.Unavailable) || !errors.As(err, &se) || se.Cause != "disk I/O error" {
		t.Fatalf("the write whose commit failed: %v", err)
	}
	_, batches, _ := s.count()
	for range 20 {
		if err := writeOne(w); !fault.Is(err, fault.Unavailable) || !errors.As(err, &se) {
			t.Fatalf("a write after the failure: %v", err)
		}
	}
	if recs, after, _ := s.count(); after != batches || recs != 1 {
		t.Errorf("after the failure the store was tried again: %d batches → %d, %d records", batches, after, recs)
	}
	h := w.Health()
	if !fault.Is(h, fault.Unavailable) || !strings.Contains(fault.SafeMessage(h), "disk I/O error") || w.Stopped() == nil {
		t.Errorf("health after the failure: %v (stopped %v)", h, w.Stopped())
	}
	w.Close()
	if _, _, cps := s.count(); cps != 0 {
		t.Errorf("%d checkpoints stored after the failure", cps)
	}
	if _, err := os.Stat(cp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a checkpoint file was written after the failure: %v", err)
	}
	if n := strings.Count(log.String(), "level=ERROR"); n != 1 || !strings.Contains(log.String(), "the audit log has stopped") ||
		!strings.Contains(log.String(), `cause="disk I/O error"`) {
		t.Errorf("want one error line naming the cause, got %d:\n%s", n, log.String())
	}
}

// An error that is not the storage's (a lock held elsewhere, a deadline)
// fails its batch only: Health reports it until the next commit, and the
// chain goes on without a gap.
func TestWriterRetriesAfterBusyStore(t *testing.T) {
	s := &fakeStore{}
	w, _, _ := newFakeWriter(t, s, nil)
	s.set(func(s *fakeStore) {
		s.commitErr = fault.Wrap(fault.Unavailable, "begin", errors.New("database is locked (5)"))
	})
	var se *audit.StorageError
	if err := writeOne(w); !fault.Is(err, fault.Unavailable) || errors.As(err, &se) {
		t.Fatalf("a write on a busy store: %v", err)
	}
	if h := w.Health(); !fault.Is(h, fault.Unavailable) || w.Stopped() != nil {
		t.Errorf("health after a busy store: %v (stopped %v)", h, w.Stopped())
	}
	if err := writeOne(w); err != nil {
		t.Fatalf("the next write: %v", err)
	}
	if h := w.Health(); h != nil {
		t.Errorf("health after a commit: %v", h)
	}
	s.mu.Lock()
	recs := s.recs
	s.mu.Unlock()
	if len(recs) != 1 || recs[0].Seq != 1 {
		t.Errorf("records %+v", recs)
	}
}

// A batch that committed to files deleted or replaced meanwhile is not
// acknowledged, and the writer stops.
func TestWriterRefusesBatchOnMovedFiles(t *testing.T) {
	s := &fakeStore{}
	w, _, _ := newFakeWriter(t, s, nil)
	if err := writeOne(w); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *fakeStore) {
		s.fault = &audit.StorageError{Cause: "database file ostiary.db deleted or renamed", Err: os.ErrNotExist}
	})
	if err := writeOne(w); !fault.Is(err, fault.Unavailable) {
		t.Fatalf("a write into a deleted file: %v", err)
	}
	if se := w.Stopped(); se == nil || !strings.Contains(se.Cause, "deleted") {
		t.Errorf("stopped: %v", se)
	}
}

// A storage failure inside an entry's Apply is the store's, not the
// entry's: it is not recorded as the entry's failure, it stops the writer.
func TestWriterApplyStorageErrorStops(t *testing.T) {
	s := &fakeStore{}
	w, _, _ := newFakeWriter(t, s, nil)
	_, err := w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "thing-create", Outcome: audit.Success},
		Apply: func(context.Context, audit.Tx, *audit.Record) error {
			return fault.Wrap(fault.Unavailable, "insert thing", &audit.StorageError{Cause: "disk full", Err: syscall.ENOSPC})
		}})
	if !fault.Is(err, fault.Unavailable) || w.Stopped() == nil {
		t.Fatalf("an apply hitting a full disk: %v (stopped %v)", err, w.Stopped())
	}
	if recs, _, _ := s.count(); recs != 0 {
		t.Errorf("%d records stored", recs)
	}
}

// With no one writing, the writer still notices: a storage fault on its
// watch tick stops it, and an idle tick probes the write path.
func TestWriterWatchesIdleStore(t *testing.T) {
	s := &fakeStore{}
	w, _, _ := newFakeWriter(t, s, func(c *audit.WriterConfig) { c.WatchEvery = 5 * time.Millisecond })
	testutil.Eventually(t, 5*time.Second, func() bool { _, b, _ := s.count(); return b > 0 }, "an idle writer never probed its store")
	if w.Health() != nil {
		t.Fatalf("health of an idle writer: %v", w.Health())
	}
	s.set(func(s *fakeStore) {
		s.fault = &audit.StorageError{Cause: "database file ostiary.db replaced", Err: errors.New("new inode")}
	})
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Stopped() != nil }, "an idle writer missed its replaced file")
	if err := writeOne(w); !fault.Is(err, fault.Unavailable) {
		t.Errorf("a write after the fault: %v", err)
	}
}

// A locked store (another process holds the lock) holds a write no longer
// than the store timeout: the batch carries the deadline of its oldest
// record, the write is refused, and the writer tries again later.
func TestWriterBoundsWaitOnStore(t *testing.T) {
	s := &fakeStore{}
	const timeout = 50 * time.Millisecond
	w, _, _ := newFakeWriter(t, s, func(c *audit.WriterConfig) { c.StoreTimeout = timeout })
	s.set(func(s *fakeStore) { s.hang = true })
	done := make(chan error, 1)
	go func() { done <- writeOne(w) }()
	select {
	case err := <-done:
		if !fault.Is(err, fault.Unavailable) {
			t.Fatalf("a write on a locked store: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write on a locked store did not return")
	}
	s.mu.Lock()
	dls := s.deadlines
	s.mu.Unlock()
	if len(dls) == 0 || dls[0] > timeout {
		t.Errorf("the batch's deadlines: %v, want one within %v", dls, timeout)
	}
	if w.Stopped() != nil || w.Health() == nil {
		t.Errorf("after a timeout: stopped %v, health %v", w.Stopped(), w.Health())
	}
	s.set(func(s *fakeStore) { s.hang = false })
	if err := writeOne(w); err != nil {
		t.Errorf("once the store answers: %v", err)
	}
}

// A commit stuck on the disk holds the records being committed (they may
// land), but not those queued behind it: they are refused after the store
// timeout and never stored, even once the disk answers.
func TestWriterRefusesWhatWaitsBehindAStalledCommit(t *testing.T) {
	s := &fakeStore{}
	w, _, _ := newFakeWriter(t, s, func(c *audit.WriterConfig) { c.StoreTimeout = 50 * time.Millisecond })
	stall, stalled := make(chan struct{}), make(chan struct{})
	s.set(func(s *fakeStore) { s.stall, s.stalled = stall, stalled })
	first := make(chan error, 1)
	go func() { first <- writeOne(w) }()
	<-stalled
	if err := writeOne(w); !fault.Is(err, fault.Unavailable) || !strings.Contains(fault.SafeMessage(err), "not performed") {
		t.Fatalf("a write behind a stalled commit: %v", err)
	}
	close(stall)
	if err := <-first; err != nil {
		t.Fatalf("the stalled write, once the disk answered: %v", err)
	}
	if err := writeOne(w); err != nil {
		t.Fatalf("a write afterwards: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) != 2 || s.recs[0].Seq != 1 || s.recs[1].Seq != 2 {
		t.Errorf("records %+v: the refused write must not be stored, the chain must have no gap", s.recs)
	}
}
