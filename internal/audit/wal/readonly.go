package wal

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Scanned says what ScanDir read.
type Scanned struct {
	Last     uint64 // the last frame of a complete batch
	Segments int
	// Torn is the number of bytes after the last complete batch of the last
	// segment: a batch being written while the scan read it, or what a
	// crash left (a start cuts it away).
	Torn int64
}

// ScanDir reads the log in dir without opening it: no lock, no repair, no
// write, so it runs beside a server that is appending (audit verify) or on
// a copy. It calls fn, in order, for every frame of every complete batch
// from frame 1, checking each frame's CRC and index and the segments'
// continuity exactly as Open does. Damage is a *CorruptError, also where
// Open would cut a torn tail only after the checks ScanDir makes too; what
// follows the last complete batch of the last segment is not read and is
// reported as Torn. The payload passed to fn is valid only during the call.
func ScanDir(dir string, fs FS, fn func(index uint64, payload []byte) error) (Scanned, error) {
	if fs == nil {
		fs = OS
	}
	var out Scanned
	names, err := fs.ReadDir(dir)
	if err != nil {
		return out, fmt.Errorf("wal: %w", err)
	}
	var segs []segment
	for _, name := range names {
		if !strings.HasSuffix(name, segExt) {
			continue // LOCK, next.tmp
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
		if err != nil || first == 0 || segName(first) != name {
			return out, fmt.Errorf("wal: %s is not a segment name", filepath.Join(dir, name))
		}
		segs = append(segs, segment{filepath.Join(dir, name), first})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.first, b.first) })
	if len(segs) == 0 {
		return out, nil
	}
	if segs[0].first != 1 {
		return out, &CorruptError{segs[0].path, 0, 1, "the log does not start at frame 1: an earlier segment is missing"}
	}
	var buf []byte
	for i, seg := range segs {
		f, err := fs.OpenFile(seg.path, os.O_RDONLY)
		if err != nil {
			return out, fmt.Errorf("wal: %w", err)
		}
		buf, err = readAll(f, buf)
		f.Close()
		if err != nil {
			return out, fmt.Errorf("wal: read %s: %w", seg.path, err)
		}
		sc := scanSegment(buf, seg.first)
		final := i == len(segs)-1
		if sc.bad != nil && (!final || !sc.torn) {
			return out, &CorruptError{seg.path, int64(sc.bad.off), sc.bad.index, sc.bad.problem}
		}
		if !final {
			if next := seg.first + uint64(sc.frames); segs[i+1].first != next {
				return out, &CorruptError{seg.path, int64(sc.cut), next, fmt.Sprintf("the segment ends before frame %d but the next one, %s, starts at frame %d",
					next, filepath.Base(segs[i+1].path), segs[i+1].first)}
			}
		} else {
			out.Torn = int64(sc.dirty - sc.cut)
		}
		off := headerSize
		for off < sc.cut {
			fr, problem := decodeFrame(buf[off:])
			if problem != "" { // scanSegment checked every frame before cut
				return out, &CorruptError{seg.path, int64(off), out.Last + 1, problem}
			}
			if err := fn(fr.index, fr.payload); err != nil {
				return out, err
			}
			off += fr.size
			out.Last = fr.index
		}
		out.Segments++
	}
	return out, nil
}
