// Package sqlitetest gives a test a fresh SQLite store in its temporary
// directory, with an audit writer over it: the real store and the real
// chain, for the tests of the packages that keep their state there.
package sqlitetest

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/store/sqlite"
)

// Env is a store, an audit log and the audit writer appending to both.
type Env struct {
	Store      *sqlite.Store
	Log        *wal.Log
	LogDir     string
	Writer     *audit.Writer
	Public     ed25519.PublicKey // verifies the writer's checkpoints
	Checkpoint string            // the checkpoint file
}

// Open creates a store in t's temporary directory; it returns the store
// alone (for tests of the store itself) and closes it when t ends.
func Open(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ostiary.db"), sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// OpenLog opens (creating) an audit log in dir with small segments, so
// that tests rotate; it is closed when t ends.
func OpenLog(t testing.TB, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(dir, wal.Options{SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// New creates a store, a log and an audit writer over them whose records
// are timed by now; all are closed when t ends.
func New(t testing.TB, now func() time.Time) *Env {
	t.Helper()
	e := &Env{Store: Open(t), LogDir: filepath.Join(t.TempDir(), "audit"), Checkpoint: filepath.Join(t.TempDir(), "audit.checkpoint")}
	e.Log = OpenLog(t, e.LogDir)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Public = pub
	if e.Writer, err = audit.NewWriter(context.Background(), audit.WriterConfig{Log: e.Log, Store: e.Store, Signer: priv,
		CheckpointPath: e.Checkpoint, Now: now, CheckpointEvery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Writer.Close() }) // before the log and store close: cleanups run last first
	return e
}

// Records returns every audit record, oldest first, once the index holds
// every record logged so far.
func (e *Env) Records(t testing.TB) []audit.Record {
	t.Helper()
	if lag := e.Writer.Settle(context.Background(), 10*time.Second); lag > 0 {
		t.Fatalf("the audit index is %d records behind the log", lag)
	}
	var out []audit.Record
	if err := e.Store.ScanRecords(context.Background(), func(r *audit.Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// QueryAudit queries the index once it holds every record logged so far.
func (e *Env) QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	e.Writer.Settle(ctx, 10*time.Second)
	return e.Store.QueryAudit(ctx, q)
}

// Settle waits until the index holds every record logged so far.
func (e *Env) Settle() { e.Writer.Settle(context.Background(), 10*time.Second) }

// Verify closes the writer (which writes its last checkpoint and lets the
// index catch up) and verifies the whole chain against it, as the log
// holds it and as the index does: both must agree.
func (e *Env) Verify(t testing.TB) audit.Summary {
	t.Helper()
	e.Writer.Close()
	cp, err := audit.ReadCheckpointFile(e.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := e.Store.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum, err := audit.VerifyLog(context.Background(), e.LogDir, e.Public, cp, cps)
	if err != nil {
		t.Fatalf("the audit log does not verify: %v", err)
	}
	isum, err := audit.Verify(context.Background(), e.Store, e.Public, cp)
	if err != nil {
		t.Fatalf("the audit index does not verify: %v", err)
	}
	if isum.Records != sum.Records || isum.Head != sum.Head {
		t.Fatalf("the index (%d records) differs from the log (%d records)", isum.Records, sum.Records)
	}
	return sum
}
