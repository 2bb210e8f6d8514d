package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store/sqlite"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/store/storetest"
)

// The SQLite store keeps every store's contract.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return sqlitetest.Open(t) })
}

// Open creates only when asked, never over an existing file, and refuses
// what is not an Ostiary database.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "ostiary.db")
	if _, err := sqlite.Open(ctx, path, sqlite.Options{}); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("opening a missing file: %v", err)
	}
	st, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ping(ctx); err != nil || st.Path() != path {
		t.Errorf("ping %v, path %s", err, st.Path())
	}
	st.Close()
	if _, err := sqlite.Open(ctx, path, sqlite.Options{Create: true}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("creating over an existing database: %v", err)
	}
	for _, opts := range []sqlite.Options{{}, {ReadOnly: true}} {
		st, err := sqlite.Open(ctx, path, opts)
		if err != nil {
			t.Fatalf("reopening with %+v: %v", opts, err)
		}
		st.Close()
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(ctx, junk, sqlite.Options{}); err == nil || !strings.Contains(err.Error(), "not a database") {
		t.Errorf("opening a file that is not a database: %v", err)
	}
}

// A store opened read-only refuses every write, and says so.
func TestReadOnlyRefusesWrites(t *testing.T) {
	ctx := context.Background()
	path := sqlitetest.Open(t).Path()
	ro, err := sqlite.Open(ctx, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	err = ro.AuditBatch(ctx, func(audit.Tx) error { t.Error("a read-only store began a transaction"); return nil })
	if !fault.Is(err, fault.Unavailable) {
		t.Errorf("a transaction on a read-only store: %v", err)
	}
	if err := ro.SaveCheckpoint(ctx, audit.Checkpoint{Seq: 1}); !fault.Is(err, fault.Unavailable) {
		t.Errorf("a checkpoint on a read-only store: %v", err)
	}
}
