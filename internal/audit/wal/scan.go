package wal

import (
	"encoding/binary"
	"fmt"
)

// scan is what scanSegment found in one segment's bytes.
type scan struct {
	frames int // intact frames of complete batches, from the segment's first index
	cut    int // offset just past them: where the next batch goes
	dirty  int // offset just past the last nonzero byte from cut on (cut if none)
	// bad is the first thing that is not an intact frame of a complete
	// batch, if anything nonzero follows cut.
	bad *badFrame
	// torn reports that everything from cut on can be what a crash leaves
	// of one batch whose write was never acknowledged: no intact frame of a
	// later batch follows it.
	torn bool
}

type badFrame struct {
	off     int
	index   uint64 // the index expected there
	problem string
}

// scanSegment reads b, a whole segment whose first frame is numbered first.
// It never fails: what it found is described in the result.
func scanSegment(b []byte, first uint64) scan {
	if len(b) < headerSize || string(b[:headerSize]) != magic {
		return scan{dirty: len(b), bad: &badFrame{0, first, "not a segment of this log (bad header)"}}
	}
	s := scan{cut: headerSize}
	off, next := headerSize, first
	misplaced := false
	for !atEnd(b[off:]) {
		f, problem := decodeFrame(b[off:])
		if problem == "" && f.index != next {
			problem = fmt.Sprintf("frame numbered %d where %d belongs", f.index, next)
			misplaced = true
		}
		if problem != "" {
			s.bad = &badFrame{off, next, problem}
			break
		}
		off, next = off+f.size, next+1
		if f.last {
			s.cut, s.frames = off, int(next-first)
		}
	}
	s.dirty = s.cut + dataEnd(b[s.cut:])
	if s.dirty == s.cut {
		s.torn = true // clean: nothing after the last batch
		return s
	}
	if s.bad == nil {
		if off < s.dirty {
			s.bad = &badFrame{off, next, "data after a zero frame header"}
		} else {
			s.bad = &badFrame{s.cut, first + uint64(s.frames), "the segment ends inside a batch"}
		}
	}
	// An intact frame out of place is never what a torn write leaves.
	s.torn = !misplaced && onlyOneBatch(b, off+8, next-1)
	if !s.torn && !misplaced {
		s.bad.problem += "; intact frames of a later batch follow, so this is no torn write"
	}
	return s
}

// onlyOneBatch reports whether the intact frames found in b from off on (at
// any 8-byte aligned offset, skipping what is not a frame) can all belong to
// one batch numbered after prev: increasing indexes, and no frame after a
// batch's last one. A torn write can leave such frames behind a hole; an
// intact later batch means the damage is in acknowledged data.
func onlyOneBatch(b []byte, off int, prev uint64) bool {
	ended := false
	limit := prev + uint64(len(b)/frameHeader) // no index beyond can fit
	for off+frameHeader <= len(b) {
		if off%len(zeros) == 0 && off+len(zeros) <= len(b) && isZero(b[off:off+len(zeros)]) {
			off += len(zeros)
			continue
		}
		if i := binary.LittleEndian.Uint64(b[off+8:]); i == 0 || i > limit {
			off += 8
			continue
		}
		f, problem := decodeFrame(b[off:])
		if problem != "" {
			off += 8
			continue
		}
		if ended || f.index <= prev {
			return false
		}
		prev, ended = f.index, f.last
		off += f.size
	}
	return true
}
