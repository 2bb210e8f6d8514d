package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// segmentOf builds a segment of size bytes holding batches of the given
// sizes, frames numbered from first.
func segmentOf(size int, first uint64, batches ...int) []byte {
	b := []byte(magic)
	i := first
	for _, n := range batches {
		for k := range n {
			b = appendFrame(b, i, fmt.Appendf(nil, "payload %d %s", i, bytes.Repeat([]byte("x"), int(i%23))), k == n-1)
			i++
		}
	}
	return append(b, make([]byte, size-len(b))...)
}

func TestFrameLayout(t *testing.T) {
	b := appendFrame(nil, 7, []byte("abc"), true)
	if len(b) != 24 || len(b)%8 != 0 {
		t.Fatalf("frame of 3 bytes takes %d bytes, want 24", len(b))
	}
	if got := binary.LittleEndian.Uint32(b[4:]); got != batchEnd|3 {
		t.Fatalf("length field %#x", got)
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != 7 {
		t.Fatalf("index %d", got)
	}
	f, problem := decodeFrame(append(b, 0, 0, 0, 0, 0, 0, 0, 0))
	if problem != "" || f.index != 7 || string(f.payload) != "abc" || !f.last || f.size != 24 {
		t.Fatalf("decode: %+v %q", f, problem)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if _, problem := decodeFrame(c); problem == "" {
			t.Errorf("byte %d flipped: still decodes", i)
		}
	}
}

func TestScanCleanSegment(t *testing.T) {
	b := segmentOf(4096, 1, 3, 1, 5)
	s := scanSegment(b, 1)
	if s.frames != 9 || s.bad != nil || !s.torn || s.dirty != s.cut {
		t.Fatalf("scan = %+v", s)
	}
	if s := scanSegment(b, 2); s.bad == nil || s.torn || s.bad.index != 2 {
		t.Fatalf("a segment named for the wrong first frame scans as %+v", s)
	}
}

// Every prefix of the bytes of a segment's last batch, followed by zeros,
// is a torn tail: the scan keeps exactly the batches before it.
func TestScanEveryPrefixOfTheLastBatch(t *testing.T) {
	full := segmentOf(4096, 1, 2, 3, 4)
	whole := scanSegment(full, 1)
	before := scanSegment(segmentOf(4096, 1, 2, 3), 1)
	for n := before.cut; n < whole.cut; n++ {
		b := bytes.Clone(full)
		clear(b[n:])
		if bytes.Equal(b, full) {
			continue // only the last frame's zero padding was cut
		}
		s := scanSegment(b, 1)
		if s.frames != 5 || s.cut != before.cut || !s.torn {
			t.Fatalf("prefix %d: scan = %+v, want the first two batches kept", n, s)
		}
	}
}

// A crash may persist any subset of the last batch's sectors: still a torn
// tail, never damage, and never a frame of the torn batch kept.
func TestScanLostSectorsOfTheLastBatch(t *testing.T) {
	full := segmentOf(8192, 1, 4, 30)
	before := scanSegment(segmentOf(8192, 1, 4), 1)
	end := scanSegment(full, 1).cut
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		b := bytes.Clone(full)
		lost := false
		for s := before.cut / 512 * 512; s < end; s += 512 {
			if r.IntN(3) == 0 {
				clear(b[max(s, before.cut):min(s+512, end)])
				lost = true
			}
		}
		sc := scanSegment(b, 1)
		if !sc.torn || (lost && (sc.frames != 4 || sc.cut != before.cut)) {
			t.Fatalf("scan = %+v, want a torn tail after 4 frames", sc)
		}
	}
}

func TestScanDamageBeforeALaterBatch(t *testing.T) {
	full := segmentOf(4096, 1, 2, 2, 2)
	b := bytes.Clone(full)
	b[headerSize+frameHeader+1] ^= 1 // the first frame's payload
	if s := scanSegment(b, 1); s.torn || s.bad == nil || s.bad.off != headerSize || s.bad.index != 1 {
		t.Fatalf("scan = %+v, want damage at frame 1", s)
	}
	b = bytes.Clone(full)
	clear(b[headerSize : headerSize+frameHeader]) // a zeroed header
	if s := scanSegment(b, 1); s.torn || s.bad == nil || s.bad.off != headerSize {
		t.Fatalf("scan = %+v, want damage at frame 1", s)
	}
}

func FuzzScanSegment(f *testing.F) {
	f.Add(segmentOf(256, 1, 1, 2))
	f.Add(segmentOf(512, 1, 3, 1)[:300])
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := scanSegment(b, 1)
		if s.cut > len(b) || s.dirty > len(b) || s.dirty < s.cut {
			t.Fatalf("offsets out of range: %+v of %d bytes", s, len(b))
		}
		if s.dirty > s.cut && s.bad == nil {
			t.Fatalf("nonzero bytes after the cut but no problem named: %+v", s)
		}
		if s.bad == nil && !s.torn {
			t.Fatalf("no problem, yet not clean: %+v", s)
		}
		// What the scan keeps is intact frames numbered 1, 2, 3…, the last one
		// ending a batch.
		off, next, last := headerSize, uint64(1), true
		for next <= uint64(s.frames) {
			fr, problem := decodeFrame(b[off:s.cut])
			if problem != "" || fr.index != next {
				t.Fatalf("kept frame %d at %d does not decode: %q", next, off, problem)
			}
			off, next, last = off+fr.size, next+1, fr.last
		}
		if s.frames > 0 && (off != s.cut || !last) {
			t.Fatalf("kept frames end at %d (batch ended: %v), cut at %d", off, last, s.cut)
		}
	})
}
