package faultfs_test

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/audit/wal/faultfs"
)

func create(t *testing.T, fs *faultfs.FS, name string) wal.File {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func contents(t *testing.T, fs *faultfs.FS, name string) string {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDONLY)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	n, _ := f.Size()
	b := make([]byte, n)
	f.ReadAt(b, 0)
	return string(b)
}

// The model the log's tests rely on: a crash keeps what was synced, and
// directory entries made durable by SyncDir, nothing else.
func TestCrashKeepsWhatWasSynced(t *testing.T) {
	fs := faultfs.New()
	fs.MkdirAll("/d")
	f := create(t, fs, "/d/a")
	f.WriteAt([]byte("synced"), 0)
	f.Sync()
	fs.SyncDir("/d")
	f.WriteAt([]byte(" and not"), 6)
	g := create(t, fs, "/d/b")
	g.WriteAt([]byte("entry never synced"), 0)
	g.Sync()
	if got := contents(t, fs, "/d/a"); got != "synced and not" {
		t.Fatalf("reads see %q", got)
	}
	after := fs.Crash(nil)
	if got := contents(t, after, "/d/a"); got != "synced" {
		t.Fatalf("after a crash: %q", got)
	}
	if names, _ := after.ReadDir("/d"); !slices.Equal(names, []string{"a"}) {
		t.Fatalf("after a crash the directory holds %v", names)
	}
	torn := fs.Crash(func(name string, sector int64) bool { return true })
	if got := contents(t, torn, "/d/a"); got != "synced and not" {
		t.Fatalf("a crash that kept every sector: %q", got)
	}
}

// fsyncgate: a failed sync loses the unsynced writes for good, though reads
// still see them, and a later sync that succeeds does not bring them back.
func TestFailedSyncLosesThePages(t *testing.T) {
	fs := faultfs.New()
	fs.MkdirAll("/d")
	f := create(t, fs, "/d/a")
	fs.SyncDir("/d")
	fs.Inject(faultfs.Fault{Op: faultfs.OpSync, Err: syscall.EIO})
	f.WriteAt([]byte("lost"), 0)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if got := contents(t, fs, "/d/a"); got != "lost" {
		t.Fatalf("reads see %q", got)
	}
	if got := contents(t, fs.Crash(nil), "/d/a"); got != "" {
		t.Fatalf("after a crash: %q; the retried sync wrote the dropped pages", got)
	}
}

func TestWriteFaults(t *testing.T) {
	fs := faultfs.New()
	fs.MkdirAll("/d")
	f := create(t, fs, "/d/a.wal")
	fs.Inject(faultfs.Fault{Op: faultfs.OpWrite, Name: ".wal", After: 1, Short: 3, Err: syscall.ENOSPC})
	if _, err := f.WriteAt([]byte("first"), 0); err != nil {
		t.Fatal(err)
	}
	n, err := f.WriteAt([]byte("second"), 5)
	if n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the faulty write: %d, %v", n, err)
	}
	if got := contents(t, fs, "/d/a.wal"); got != "firstsec" {
		t.Fatalf("reads see %q", got)
	}
	if _, err := f.WriteAt([]byte("!"), 8); err != nil || fs.Count(faultfs.OpWrite, ".wal") != 3 {
		t.Fatalf("a fault fires once: %v, %d writes counted", err, fs.Count(faultfs.OpWrite, ".wal"))
	}
}
