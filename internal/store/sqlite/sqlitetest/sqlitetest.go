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
	"github.com/ostiary/ostiary/internal/store/sqlite"
)

// Env is a store and the audit writer appending to it.
type Env struct {
	Store      *sqlite.Store
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

// New creates a store and an audit writer over it whose records are
// timed by now; both are closed when t ends.
func New(t testing.TB, now func() time.Time) *Env {
	t.Helper()
	e := &Env{Store: Open(t), Checkpoint: filepath.Join(t.TempDir(), "audit.checkpoint")}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Public = pub
	if e.Writer, err = audit.NewWriter(context.Background(), audit.WriterConfig{Store: e.Store, Signer: priv,
		CheckpointPath: e.Checkpoint, Now: now, CheckpointEvery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Writer.Close() }) // before the store closes: cleanups run last first
	return e
}

// Records returns every audit record, oldest first.
func (e *Env) Records(t testing.TB) []audit.Record {
	t.Helper()
	var out []audit.Record
	if err := e.Store.ScanRecords(context.Background(), func(r *audit.Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// Verify closes the writer (which writes its last checkpoint) and
// verifies the whole chain against it.
func (e *Env) Verify(t testing.TB) audit.Summary {
	t.Helper()
	e.Writer.Close()
	cp, err := audit.ReadCheckpointFile(e.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(context.Background(), e.Store, e.Public, cp)
	if err != nil {
		t.Fatalf("the audit chain does not verify: %v", err)
	}
	return sum
}
