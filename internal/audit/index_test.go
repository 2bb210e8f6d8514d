package audit_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/audit/wal/faultfs"
	"github.com/ostiary/ostiary/internal/testutil"
)

// gatedStore's index refuses (a lock held elsewhere) while fail is set.
type gatedStore struct {
	*fakeStore
	fail  atomic.Bool
	once  atomic.Bool
	delay chan struct{} // the first failing call waits for it
}

func (g *gatedStore) IndexRecords(ctx context.Context, recs []*audit.Record, through uint64) error {
	if g.delay != nil && g.once.CompareAndSwap(false, true) {
		<-g.delay
		return errors.New("database is locked (5)")
	}
	if g.fail.Load() {
		return errors.New("database is locked (5)")
	}
	return g.fakeStore.IndexRecords(ctx, recs, through)
}

// The indexer, reading from the log after a failure, must not index a
// change's record that is in the log but whose transaction has not
// committed (and then fails to): the row would make the change look
// applied, and the next start would write no change-not-applied record.
// It reads the log only up to what the writer acknowledged. (Found by an
// outsider review.)
func TestIndexNeverRowsAnUncommittedChange(t *testing.T) {
	s := &gatedStore{fakeStore: &fakeStore{}}
	_, priv, _ := ed25519.GenerateKey(nil)
	fs := faultfs.New()
	log, err := wal.Open("/audit", wal.Options{FS: fs, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cfg := audit.WriterConfig{Log: log, Store: s, Signer: priv, CheckpointPath: filepath.Join(t.TempDir(), "cp"),
		CheckpointEvery: time.Hour, WatchEvery: time.Hour, Logger: slog.New(slog.DiscardHandler), StoreTimeout: 10 * time.Second}
	w, err := audit.NewWriter(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stall, stalled := make(chan struct{}), make(chan struct{})
	s.delay = stalled
	if err := writeOne(w); err != nil { // record 1; its indexing fails (once the change is stalled): the indexer then reads from the log
		t.Fatal(err)
	}
	s.set(func(f *fakeStore) {
		f.stall, f.stalled = stall, stalled
		f.commitErr = &audit.StorageError{Cause: "disk I/O error", Err: syscall.EIO}
	})
	errc := make(chan error, 1)
	go func() { errc <- writeChange(w) }() // record 2, a change
	<-stalled                              // record 2 is in the log, its transaction not committed
	testutil.Eventually(t, 10*time.Second, func() bool { return w.Indexed() >= 1 }, "the indexer did not catch up from the log")
	if ok, _ := s.AuditIndexed(context.Background(), 2); ok {
		t.Fatal("the indexer gave an uncommitted change's record its row")
	}
	close(stall)
	if err := <-errc; err == nil {
		t.Fatal("the change whose commit failed was acknowledged")
	}
	applied, _, _ := s.count()
	w.Close()

	w2, err := audit.NewWriter(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	rd, err := log.Reader(1)
	if err != nil {
		t.Fatal(err)
	}
	cited := false
	for rd.Next() {
		r, err := audit.ParsePayload(rd.Payload())
		if err != nil {
			t.Fatal(err)
		}
		if r.Event == audit.EventChangeNotApplied {
			cited = true
		}
	}
	if applied != 0 || !cited {
		t.Fatalf("record 2 claims a change that was never applied, and no change-not-applied record was written after restart (log ends at %d)", log.Last())
	}
}

// After a failed attempt to index from the log, the indexer tries again on
// its own: an idle server's index catches up once the store answers.
// (Found by an outsider review: it used to stay behind until the next
// record.)
func TestIndexRetriesAfterFailedReadFromLog(t *testing.T) {
	s := &gatedStore{fakeStore: &fakeStore{}}
	e := newFakeWriter(t, s.fakeStore, nil)
	e.w.Close()
	_, priv, _ := ed25519.GenerateKey(nil)
	cfg := audit.WriterConfig{Log: e.log, Store: s, Signer: priv, CheckpointPath: filepath.Join(t.TempDir(), "cp"),
		CheckpointEvery: time.Hour, WatchEvery: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	w, err := audit.NewWriter(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.fail.Store(true)
	if err := writeOne(w); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a few 50 ms retries fail (the lock is held)
	s.fail.Store(false)                // the lock is released
	if lag := w.Settle(context.Background(), 3*time.Second); lag != 0 {
		t.Fatalf("the index is still %d behind the log 3 s after the store became writable again, with no new record", lag)
	}
}
