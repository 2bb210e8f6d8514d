package wal_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// damaged is a closed log on disk of 60 batches of 5 frames in segments
// of 4 KiB.
type damaged struct {
	dir   string
	segs  []string // oldest first
	first []uint64 // each segment's first frame
	last  uint64
}

func newDamaged(t *testing.T) *damaged {
	d := &damaged{dir: t.TempDir()}
	l := open(t, d.dir, wal.Options{SegmentSize: 4096})
	d.last = appendBatches(t, l, 60, 5)
	l.Close()
	d.segs, _ = filepath.Glob(filepath.Join(d.dir, "*.wal"))
	for _, s := range d.segs {
		var first uint64
		fmt.Sscanf(filepath.Base(s), "%d.wal", &first)
		d.first = append(d.first, first)
	}
	if len(d.segs) < 4 {
		t.Fatalf("%d segments", len(d.segs))
	}
	return d
}

// offset is where frame index lies in the segment starting at first.
func offset(first, index uint64) int64 {
	off := int64(8)
	for i := first; i < index; i++ {
		off += int64(16 + (len(payload(i))+7)&^7)
	}
	return off
}

func (d *damaged) patch(t *testing.T, seg string, off int64, f func([]byte)) {
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	f(b[off:])
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantCorrupt(t *testing.T, err error, seg string, off int64, index uint64, problem string) {
	t.Helper()
	var ce *wal.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v, want a CorruptError", err)
	}
	if ce.Segment != seg || ce.Offset != off || ce.Index != index || !strings.Contains(ce.Problem, problem) {
		t.Fatalf("Open: %v\nwant %s at byte %d (frame %d): %s", err, filepath.Base(seg), off, index, problem)
	}
	if msg := err.Error(); !strings.Contains(msg, seg) || !strings.Contains(msg, fmt.Sprintf("at byte %d (frame %d)", off, index)) {
		t.Fatalf("the message does not name the place: %s", msg)
	}
}

func TestDamageRefusesOpen(t *testing.T) {
	t.Run("a byte flipped in a sealed segment", func(t *testing.T) {
		d := newDamaged(t)
		off := offset(1, 3)
		d.patch(t, d.segs[0], off+20, func(b []byte) { b[0] ^= 1 })
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, d.segs[0], off, 3, "checksum mismatch")
	})
	t.Run("a byte flipped in the last segment before a later batch", func(t *testing.T) {
		d := newDamaged(t)
		seg, f := d.segs[len(d.segs)-1], d.first[len(d.segs)-1]
		off := offset(f, f+2)
		d.patch(t, seg, off+17, func(b []byte) { b[0] ^= 0x80 })
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, seg, off, f+2, "no torn write")
	})
	t.Run("a frame header zeroed in the last segment", func(t *testing.T) {
		d := newDamaged(t)
		seg, f := d.segs[len(d.segs)-1], d.first[len(d.segs)-1]
		off := offset(f, f+5)
		d.patch(t, seg, off, func(b []byte) { clear(b[:16]) })
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, seg, off, f+5, "data after a zero frame header")
	})
	t.Run("a sealed segment cut short", func(t *testing.T) {
		d := newDamaged(t)
		f := d.first[1]
		if err := os.Truncate(d.segs[1], offset(f, f+7)); err != nil {
			t.Fatal(err)
		}
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, d.segs[1], offset(f, f+5), f+5, "ends inside a batch")
	})
	t.Run("a sealed segment missing", func(t *testing.T) {
		d := newDamaged(t)
		os.Remove(d.segs[1])
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, d.segs[0], offset(1, d.first[1]), d.first[1], "starts at frame "+fmt.Sprint(d.first[2]))
	})
	t.Run("the first segment missing", func(t *testing.T) {
		d := newDamaged(t)
		os.Remove(d.segs[0])
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, d.segs[1], 0, 1, "does not start at frame 1")
	})
	t.Run("a segment replaced by a copy of another", func(t *testing.T) {
		d := newDamaged(t)
		b, _ := os.ReadFile(d.segs[1])
		os.WriteFile(d.segs[2], b, 0o600)
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, d.segs[2], 8, d.first[2], fmt.Sprintf("frame numbered %d where %d belongs", d.first[1], d.first[2]))
	})
	t.Run("a bad segment header", func(t *testing.T) {
		d := newDamaged(t)
		d.patch(t, d.segs[2], 0, func(b []byte) { copy(b, "SQLite f") })
		_, err := wal.Open(d.dir, wal.Options{})
		wantCorrupt(t, err, d.segs[2], 0, d.first[2], "bad header")
	})
	t.Run("a stray file named like a segment", func(t *testing.T) {
		d := newDamaged(t)
		stray := filepath.Join(d.dir, "12.wal")
		os.WriteFile(stray, nil, 0o600)
		if _, err := wal.Open(d.dir, wal.Options{}); err == nil || !strings.Contains(err.Error(), stray) {
			t.Fatalf("Open: %v, want a refusal naming %s", err, stray)
		}
	})
}

// Damage to the last batch cannot be told from a write that a crash tore:
// Open cuts it. (The audit chain's signed checkpoints catch it if a
// checkpoint attested those records.)
func TestDamageToTheLastBatchLooksTorn(t *testing.T) {
	d := newDamaged(t)
	seg, f := d.segs[len(d.segs)-1], d.first[len(d.segs)-1]
	d.patch(t, seg, offset(f, d.last)+20, func(b []byte) { b[0] ^= 1 })
	l := open(t, d.dir, wal.Options{SegmentSize: 4096})
	checkFrames(t, l, d.last-5)
	if rec := l.Recovered(); rec.Segment != seg || rec.Offset != offset(f, d.last-4) {
		t.Fatalf("Recovered() = %+v", rec)
	}
}

// A Reader checks every frame again: damage done after Open is reported,
// not returned as a record.
func TestReaderReportsDamageAfterOpen(t *testing.T) {
	d := newDamaged(t)
	l := open(t, d.dir, wal.Options{SegmentSize: 4096})
	f := d.first[1]
	d.patch(t, d.segs[1], offset(f, f+1)+18, func(b []byte) { b[0] ^= 1 })
	r, err := l.Reader(1)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for r.Next() {
		n++
	}
	var ce *wal.CorruptError
	if !errors.As(r.Err(), &ce) || ce.Segment != d.segs[1] || ce.Index != f+1 || n != f {
		t.Fatalf("read %d frames, then %v", n, r.Err())
	}
}
