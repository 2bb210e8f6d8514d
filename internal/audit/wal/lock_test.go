package wal_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// A lock released a moment after it is asked for (as when a child process
// between fork and exec still shares the released descriptor) is taken;
// one held on stays refused.
func TestFlockBrieflyWaitsOutAFork(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	held := open()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := wal.FlockBriefly(open()); err == nil {
		t.Fatal("a lock held on was taken")
	}
	go func() { time.Sleep(50 * time.Millisecond); held.Close() }()
	if err := wal.FlockBriefly(open()); err != nil {
		t.Fatalf("a lock released a moment later: %v", err)
	}
}
