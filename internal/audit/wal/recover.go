package wal

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// recover finds the segments, checks every frame, cuts a torn tail and
// opens the last segment for appending.
func (l *Log) recover() error {
	segs, err := l.listSegments()
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return l.create()
	}
	if segs[0].first != 1 {
		return &CorruptError{segs[0].path, 0, 1, "the log does not start at frame 1: an earlier segment is missing"}
	}
	// A rename made just before a crash or a failed sync may not be durable
	// yet: make the directory as it is now so before appending to it.
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	var buf []byte
	for i, seg := range segs[:len(segs)-1] {
		f, b, err := l.readSegment(seg.path, os.O_RDONLY, buf)
		if err != nil {
			return err
		}
		f.Close()
		buf = b
		sc := scanSegment(b, seg.first)
		if sc.bad != nil {
			return &CorruptError{seg.path, int64(sc.bad.off), sc.bad.index, sc.bad.problem}
		}
		if next := seg.first + uint64(sc.frames); segs[i+1].first != next {
			return &CorruptError{seg.path, int64(sc.cut), next, fmt.Sprintf("the segment ends before frame %d but the next one, %s, starts at frame %d",
				next, filepath.Base(segs[i+1].path), segs[i+1].first)}
		}
	}
	seg := segs[len(segs)-1]
	f, b, err := l.readSegment(seg.path, os.O_RDWR, buf)
	if err != nil {
		return err
	}
	sc := scanSegment(b, seg.first)
	if !sc.torn {
		f.Close()
		return &CorruptError{seg.path, int64(sc.bad.off), sc.bad.index, sc.bad.problem}
	}
	l.segs, l.tail, l.tailSize, l.off, l.last = segs, f, int64(len(b)), int64(sc.cut), seg.first+uint64(sc.frames)-1
	if sc.dirty > sc.cut {
		l.recovered = Recovery{seg.path, int64(sc.cut), int64(sc.dirty - sc.cut)}
	}
	return l.rewriteTail(b, sc)
}

// rewriteTail writes the last segment's frames back with the torn tail
// zeroed, and syncs. Rewriting the frames is deliberate: after a failed
// fsync, Linux may go on showing pages it never wrote, so having read them
// back proves nothing; written again and synced, they are on disk.
func (l *Log) rewriteTail(b []byte, sc scan) error {
	clear(b[sc.cut:sc.dirty])
	end := max(sc.dirty, sc.cut)
	if end == headerSize {
		return nil
	}
	if _, err := l.tail.WriteAt(b[headerSize:end], int64(headerSize)); err != nil {
		return fmt.Errorf("wal: rewrite %s: %w", l.segs[len(l.segs)-1].path, err)
	}
	if err := l.tail.Sync(); err != nil {
		return fmt.Errorf("wal: sync %s: %w", l.segs[len(l.segs)-1].path, err)
	}
	return nil
}

// listSegments returns the segments in dir in order, after removing a
// segment left half-prepared.
func (l *Log) listSegments() ([]segment, error) {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var segs []segment
	for _, name := range names {
		path := filepath.Join(l.dir, name)
		switch {
		case name == nextName:
			if err := l.fs.Remove(path); err != nil {
				return nil, fmt.Errorf("wal: %w", err)
			}
		case strings.HasSuffix(name, segExt):
			first, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 10, 64)
			if err != nil || first == 0 || segName(first) != name {
				return nil, fmt.Errorf("wal: %s is not a segment name; remove or rename it", path)
			}
			segs = append(segs, segment{path, first})
		}
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.first, b.first) })
	return segs, nil
}

// readSegment opens path and reads all of it into buf (grown as needed).
func (l *Log) readSegment(path string, flag int, buf []byte) (File, []byte, error) {
	f, err := l.fs.OpenFile(path, flag)
	if err != nil {
		return nil, buf, fmt.Errorf("wal: %w", err)
	}
	b, err := readAll(f, buf)
	if err != nil {
		f.Close()
		return nil, buf, fmt.Errorf("wal: read %s: %w", path, err)
	}
	return f, b, nil
}

// readAll reads f whole into buf, grown as needed.
func readAll(f File, buf []byte) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return buf, err
	}
	return readN(f, buf, size)
}

// readN reads the first n bytes of f into buf, grown as needed.
func readN(f File, buf []byte, n int64) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(n))[:n]
	if got, err := f.ReadAt(buf, 0); int64(got) < n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}

// create makes the first segment of a new log.
func (l *Log) create() error {
	f, err := makeSegment(l.fs, filepath.Join(l.dir, nextName), l.size)
	if err != nil {
		return fmt.Errorf("wal: create the first segment: %w", err)
	}
	seg := segment{filepath.Join(l.dir, segName(1)), 1}
	l.segs, l.tail, l.tailSize, l.off = []segment{seg}, f, l.size, int64(headerSize)
	if err := l.fs.Rename(filepath.Join(l.dir, nextName), seg.path); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	// The directory itself may be new: its entry in the parent too.
	for _, d := range []string{l.dir, filepath.Dir(l.dir)} {
		if err := l.fs.SyncDir(d); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	return nil
}
