package wal_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// A real file system running out of space: a tmpfs of 256 KiB, where root
// may mount one. Overwriting a zero-filled segment needs no space, so the
// failure comes from making the next segment, before any record is at risk,
// and fails the log; everything acknowledged is there after a reopen.
func TestRealENOSPC(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	os.Mkdir(dir, 0o700)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })

	l, err := wal.Open(filepath.Join(dir, "audit"), wal.Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var acked uint64
	for range 10000 {
		if err = l.AppendBatch(batch(acked, 20)); err != nil {
			break
		}
		acked += 20
	}
	if !errors.Is(err, wal.ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a full tmpfs: %v after %d frames", err, acked)
	}
	if err2 := l.AppendBatch(batch(acked, 1)); err2 != err {
		t.Fatalf("append after ENOSPC: %v", err2)
	}
	l.Close()
	l = open(t, filepath.Join(dir, "audit"), wal.Options{SegmentSize: 64 << 10})
	checkFrames(t, l, acked)
}
