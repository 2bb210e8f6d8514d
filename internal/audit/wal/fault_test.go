package wal_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/audit/wal/faultfs"
)

const dir = "/data/audit"

// Every storage fault stops the log for good, acknowledges nothing of the
// failing batch, and loses nothing acknowledged, whether the process
// restarts (the page cache survives) or the machine loses power.
func TestStorageFaults(t *testing.T) {
	cases := []struct {
		name  string
		fault faultfs.Fault
		cause error
	}{
		{"write error", faultfs.Fault{Op: faultfs.OpWrite, Name: ".wal", After: 9, Err: syscall.EIO}, syscall.EIO},
		{"ENOSPC part way", faultfs.Fault{Op: faultfs.OpWrite, Name: ".wal", After: 9, Short: 100, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"short write", faultfs.Fault{Op: faultfs.OpWrite, Name: ".wal", After: 9, Short: 100}, io.ErrShortWrite},
		{"fsync error", faultfs.Fault{Op: faultfs.OpSync, Name: ".wal", After: 9, Err: syscall.EIO}, syscall.EIO},
		// the first segment is made at Open, the second right after
		{"ENOSPC preparing a segment", faultfs.Fault{Op: faultfs.OpWrite, Name: "next.tmp", After: 2, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"fsync error preparing a segment", faultfs.Fault{Op: faultfs.OpSync, Name: "next.tmp", After: 2, Err: syscall.EIO}, syscall.EIO},
		{"rename error rotating", faultfs.Fault{Op: faultfs.OpRename, After: 1, Err: syscall.EIO}, syscall.EIO},
		{"directory sync error rotating", faultfs.Fault{Op: faultfs.OpSyncDir, Name: "audit", After: 1, Err: syscall.EIO}, syscall.EIO},
	}
	for _, tc := range cases {
		for _, restart := range []string{"process restart", "power loss"} {
			t.Run(tc.name+"/"+restart, func(t *testing.T) {
				fs := faultfs.New()
				fs.Inject(tc.fault)
				l := open(t, dir, wal.Options{SegmentSize: 4096, FS: fs})
				var acked uint64
				var failure error
				for range 100 {
					if failure = l.AppendBatch(batch(acked, 10)); failure != nil {
						break
					}
					acked += 10
				}
				if !errors.Is(failure, wal.ErrFailed) || !errors.Is(failure, tc.cause) {
					t.Fatalf("the fault surfaced as %v, want ErrFailed and %v", failure, tc.cause)
				}
				if acked < 10 || l.Last() != acked {
					t.Fatalf("%d frames acknowledged before the fault, Last() = %d", acked, l.Last())
				}

				// Refused for good, with no more I/O on the segments, though
				// the file system would now succeed.
				w, s := fs.Count(faultfs.OpWrite, ".wal"), fs.Count(faultfs.OpSync, ".wal")
				for range 3 {
					if err := l.AppendBatch(batch(acked, 1)); err != failure {
						t.Fatalf("append after the fault: %v, want the same %v", err, failure)
					}
				}
				if l.Err() != failure {
					t.Fatalf("Err() = %v", l.Err())
				}
				if fs.Count(faultfs.OpWrite, ".wal") != w || fs.Count(faultfs.OpSync, ".wal") != s {
					t.Fatal("a failed log went on writing or syncing")
				}

				after := fs
				if restart == "power loss" {
					after = fs.Crash(nil)
				} else {
					l.Close()
				}
				l = open(t, dir, wal.Options{SegmentSize: 4096, FS: after})
				got := l.Last()
				if got != acked && !(restart == "process restart" && got == acked+10) {
					t.Fatalf("reopened with %d frames; %d were acknowledged", got, acked)
				}
				checkFrames(t, l, got)
				// Appends work again, and what they add survives power loss.
				more := appendBatches(t, l, 5, 10)
				l = open(t, dir, wal.Options{SegmentSize: 4096, FS: after.Crash(nil)})
				checkFrames(t, l, more)
			})
		}
	}
}

// After a failed fsync the page cache may show a batch the disk never got.
// A restart reads it back, so Open must write it again: otherwise the next
// power loss would leave a hole under batches acknowledged since.
func TestFsyncFailureThenRestartThenPowerLoss(t *testing.T) {
	fs := faultfs.New()
	l := open(t, dir, wal.Options{SegmentSize: 64 << 10, FS: fs})
	appendBatches(t, l, 3, 10)
	fs.Inject(faultfs.Fault{Op: faultfs.OpSync, Name: ".wal", Err: syscall.EIO})
	if err := l.AppendBatch(batch(30, 10)); err == nil {
		t.Fatal("the fsync fault was not reported")
	}
	l.Close()
	l = open(t, dir, wal.Options{SegmentSize: 64 << 10, FS: fs})
	seen := l.Last() // 40: the unacknowledged batch is visible
	more := appendBatches(t, l, 3, 10)
	l = open(t, dir, wal.Options{SegmentSize: 64 << 10, FS: fs.Crash(nil)})
	if seen != 40 || l.Last() != more {
		t.Fatalf("saw %d frames after the restart, appended up to %d, %d after power loss", seen, more, l.Last())
	}
	checkFrames(t, l, more)
}

// Power fails while a batch is being written: the disk keeps any subset of
// its sectors. Open keeps every acknowledged batch and either the whole torn
// batch or none of it, and the log goes on cleanly from there.
func TestPowerLossDuringABatch(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 300 {
		fs := faultfs.New()
		l := open(t, dir, wal.Options{SegmentSize: 64 << 10, FS: fs})
		acked := appendBatches(t, l, trial%7, 10) // 0 too: the very first batch torn
		fs.Inject(faultfs.Fault{Op: faultfs.OpSync, Name: ".wal", Halt: true, Err: faultfs.ErrInjected})
		n := 1 + r.IntN(40)
		if err := l.AppendBatch(batch(acked, n)); err == nil {
			t.Fatal("the halted sync was reported a success")
		}
		var keep func(string, int64) bool
		switch cut := int64(r.IntN(4096)); trial % 3 {
		case 0: // a prefix
			keep = func(_ string, s int64) bool { return s < cut }
		case 1: // any sectors
			keep = func(string, int64) bool { return r.IntN(2) == 0 }
		case 2: // all of them, but never synced
			keep = func(string, int64) bool { return true }
		}
		after := fs.Crash(keep)
		l = open(t, dir, wal.Options{SegmentSize: 64 << 10, FS: after})
		got := l.Last()
		if got != acked && !(got == acked+uint64(n)) {
			t.Fatalf("trial %d: reopened with %d frames: %d acknowledged, the torn batch had %d", trial, got, acked, n)
		}
		if trial%3 == 2 && got != acked+uint64(n) {
			t.Fatalf("trial %d: a batch that fully reached the disk was dropped", trial)
		}
		checkFrames(t, l, got)
		more := appendBatches(t, l, 2, 10)
		l = open(t, dir, wal.Options{SegmentSize: 64 << 10, FS: after.Crash(nil)})
		checkFrames(t, l, more)
	}
}
