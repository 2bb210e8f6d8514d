package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/audit/wal/faultfs"
)

// payload is frame i's content: deterministic, so any frame read back can
// be checked, and of varying length, so padding varies.
func payload(i uint64) []byte {
	return fmt.Appendf(nil, "record %d %s", i, bytes.Repeat([]byte{'a' + byte(i%26)}, int(i%41)))
}

// batch returns n payloads for the frames after last.
func batch(last uint64, n int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = payload(last + 1 + uint64(i))
	}
	return b
}

func open(t testing.TB, dir string, opts wal.Options) *wal.Log {
	t.Helper()
	l, err := wal.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendBatches appends count batches of n frames and returns the last
// index acknowledged.
func appendBatches(t testing.TB, l *wal.Log, count, n int) uint64 {
	t.Helper()
	for range count {
		if err := l.AppendBatch(batch(l.Last(), n)); err != nil {
			t.Fatal(err)
		}
	}
	return l.Last()
}

// checkFrames reads the whole log back and checks that it holds exactly
// frames 1…want with their payloads.
func checkFrames(t testing.TB, l *wal.Log, want uint64) {
	t.Helper()
	if got := l.Last(); got != want {
		t.Fatalf("Last() = %d, want %d", got, want)
	}
	r, err := l.Reader(1)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for r.Next() {
		n++
		if r.Index() != n || !bytes.Equal(r.Payload(), payload(n)) {
			t.Fatalf("frame %d: index %d, payload %q", n, r.Index(), r.Payload())
		}
	}
	if r.Err() != nil || n != want {
		t.Fatalf("read %d frames of %d: %v", n, want, r.Err())
	}
}

func TestAppendCloseReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l := open(t, dir, wal.Options{})
	if l.Last() != 0 {
		t.Fatalf("a new log ends at %d", l.Last())
	}
	last := appendBatches(t, l, 20, 7)
	checkFrames(t, l, last)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendBatch(batch(last, 1)); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	l = open(t, dir, wal.Options{})
	checkFrames(t, l, last)
	if rec := l.Recovered(); rec.Segment != "" {
		t.Fatalf("a clean log was cut on open: %+v", rec)
	}
	checkFrames(t, l, appendBatches(t, l, 3, 2))
}

func TestReaderFromAnIndex(t *testing.T) {
	l := open(t, t.TempDir(), wal.Options{SegmentSize: 4096})
	last := appendBatches(t, l, 60, 5) // several segments
	for _, from := range []uint64{0, 1, 2, 77, 150, last, last + 1} {
		r, err := l.Reader(from)
		if err != nil {
			t.Fatal(err)
		}
		want := max(from, 1)
		for r.Next() {
			if r.Index() != want || !bytes.Equal(r.Payload(), payload(want)) {
				t.Fatalf("from %d: got frame %d, want %d", from, r.Index(), want)
			}
			want++
		}
		if r.Err() != nil || want != last+1 {
			t.Fatalf("from %d: stopped before %d (last %d): %v", from, want, last, r.Err())
		}
	}
	if _, err := l.Reader(last + 2); err == nil {
		t.Fatal("a reader past the end was made")
	}
}

// A reader made while appends go on returns exactly the frames acknowledged
// when it was made, intact.
func TestReaderWhileAppending(t *testing.T) {
	l := open(t, t.TempDir(), wal.Options{SegmentSize: 8192})
	appendBatches(t, l, 10, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		appendBatches(t, l, 300, 4)
	}()
	for range 50 {
		r, err := l.Reader(1)
		if err != nil {
			t.Fatal(err)
		}
		at := l.Last()
		var n uint64
		for r.Next() {
			n++
			if r.Index() != n || !bytes.Equal(r.Payload(), payload(n)) {
				t.Fatalf("frame %d: %d %q", n, r.Index(), r.Payload())
			}
		}
		if r.Err() != nil || n > at {
			t.Fatalf("read %d frames, %d acknowledged after: %v", n, at, r.Err())
		}
	}
	wg.Wait()
}

// Segments are named for their first frame, preallocated on disk (blocks
// allocated, not a sparse file), and a batch never spans two.
func TestRotationAndPreallocation(t *testing.T) {
	dir := t.TempDir()
	const size = 8192
	l := open(t, dir, wal.Options{SegmentSize: size})
	var starts []uint64 // index of each batch's first frame
	for range 40 {
		starts = append(starts, l.Last()+1)
		if err := l.AppendBatch(batch(l.Last(), 13)); err != nil {
			t.Fatal(err)
		}
	}
	last := l.Last()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(names) < 4 {
		t.Fatalf("%d segments, want rotation into several", len(names))
	}
	for _, name := range names {
		var first uint64
		if _, err := fmt.Sscanf(filepath.Base(name), "%020d.wal", &first); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(starts, first) {
			t.Errorf("%s does not start at a batch", name)
		}
		b, _ := os.ReadFile(name)
		if idx := uint64(b[16]) | uint64(b[17])<<8; idx != first {
			t.Errorf("%s holds frame %d first", name, idx)
		}
		fi, _ := os.Stat(name)
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Size() != size || st.Blocks*512 < size {
			t.Errorf("%s: %d bytes, %d allocated: not preallocated", name, fi.Size(), st.Blocks*512)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Errorf("Close left %v behind", left)
	}
	l = open(t, dir, wal.Options{SegmentSize: size})
	checkFrames(t, l, last)
}

func TestBatchTooLarge(t *testing.T) {
	l := open(t, t.TempDir(), wal.Options{SegmentSize: 4096})
	appendBatches(t, l, 3, 3)
	huge := [][]byte{make([]byte, 4096)}
	if err := l.AppendBatch(huge); !errors.Is(err, wal.ErrTooLarge) {
		t.Fatalf("a batch larger than a segment: %v", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("the log failed after refusing a large batch: %v", err)
	}
	checkFrames(t, l, appendBatches(t, l, 3, 3))
}

func TestOneWriterAtATime(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, wal.Options{})
	if _, err := wal.Open(dir, wal.Options{}); err == nil {
		t.Fatal("a second Open of a log in use succeeded")
	}
	l.Close()
	open(t, dir, wal.Options{})
}

// Group commit: a batch of any size, the one that rotates included, costs
// one write and one sync of the segment.
func TestOneWriteOneSyncPerBatch(t *testing.T) {
	fs := faultfs.New()
	l := open(t, "/data/audit", wal.Options{SegmentSize: 64 << 10, FS: fs})
	for _, n := range []int{1, 64, 512, 512, 512, 512} {
		w, s := fs.Count(faultfs.OpWrite, ".wal"), fs.Count(faultfs.OpSync, ".wal")
		if err := l.AppendBatch(batch(l.Last(), n)); err != nil {
			t.Fatal(err)
		}
		if dw, ds := fs.Count(faultfs.OpWrite, ".wal")-w, fs.Count(faultfs.OpSync, ".wal")-s; dw != 1 || ds != 1 {
			t.Fatalf("a batch of %d: %d writes and %d syncs", n, dw, ds)
		}
	}
	names, _ := fs.ReadDir("/data/audit")
	if segs := slices.DeleteFunc(names, func(n string) bool { return filepath.Ext(n) != ".wal" }); len(segs) < 2 {
		t.Fatalf("no rotation happened: %v", segs)
	}
	checkFrames(t, l, l.Last())
}

// A segment half made when the process died is removed, never read.
func TestHalfMadeSegmentIsRemoved(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, wal.Options{SegmentSize: 4096})
	last := appendBatches(t, l, 5, 5)
	l.Close()
	if err := os.WriteFile(filepath.Join(dir, "next.tmp"), []byte("ostwal\x00\x01 half made"), 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, wal.Options{SegmentSize: 4096})
	checkFrames(t, l, last)
	checkFrames(t, l, appendBatches(t, l, 30, 5)) // rotating through a fresh one
}
