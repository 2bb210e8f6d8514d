package wal

import (
	"fmt"
	"os"
	"sort"
)

// Reader reads acknowledged frames in order, checking each one's CRC and
// index. It reads one segment at a time into memory, through its own file
// handles, so it may run while the log is appended to.
type Reader struct {
	fs      FS
	segs    []segment // from the one holding the first frame to read
	tailEnd int64     // the acknowledged end of the last segment
	next    uint64    // index of the next frame to return
	last    uint64    // the last frame to return

	buf     []byte // the current segment
	seg     segment
	off     int
	index   uint64
	payload []byte
	err     error
}

// Reader returns a Reader of the frames from index from (at least 1) up to
// Last() as it is now.
func (l *Log) Reader(from uint64) (*Reader, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	from = max(from, 1)
	if from > l.last+1 {
		return nil, fmt.Errorf("wal: no frame %d: the log ends at %d", from, l.last)
	}
	k := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].first > from }) - 1
	return &Reader{fs: l.fs, segs: append([]segment(nil), l.segs[k:]...), tailEnd: l.off, next: from, last: l.last}, nil
}

// Next advances to the next frame and reports whether there is one. At the
// end, or after an error, it returns false; Err tells which.
func (r *Reader) Next() bool {
	if r.err != nil || r.next > r.last {
		return false
	}
	for {
		if r.buf == nil || atEnd(r.buf[r.off:]) {
			if r.err = r.load(); r.err != nil {
				return false
			}
			continue
		}
		f, problem := decodeFrame(r.buf[r.off:])
		if problem == "" && f.index != r.index+1 {
			problem = fmt.Sprintf("frame numbered %d where %d belongs", f.index, r.index+1)
		}
		if problem != "" {
			r.err = &CorruptError{r.seg.path, int64(r.off), r.index + 1, problem}
			return false
		}
		r.off += f.size
		r.index = f.index
		if f.index >= r.next {
			r.payload, r.next = f.payload, f.index+1
			return true
		}
	}
}

// load reads the next segment, which must start where the last one ended.
func (r *Reader) load() error {
	if len(r.segs) == 0 {
		return &CorruptError{r.seg.path, int64(r.off), r.index + 1, "frames missing at the end of the log"}
	}
	seg := r.segs[0]
	r.segs = r.segs[1:]
	if r.buf != nil && seg.first != r.index+1 {
		return &CorruptError{r.seg.path, int64(r.off), r.index + 1, fmt.Sprintf("the segment ends before frame %d but the next one starts at frame %d", r.index+1, seg.first)}
	}
	f, err := r.fs.OpenFile(seg.path, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	if len(r.segs) == 0 {
		r.buf, err = readN(f, r.buf, r.tailEnd) // never past what was acknowledged
	} else {
		r.buf, err = readAll(f, r.buf)
	}
	if err != nil {
		return fmt.Errorf("wal: read %s: %w", seg.path, err)
	}
	if len(r.buf) < headerSize || string(r.buf[:headerSize]) != magic {
		return &CorruptError{seg.path, 0, seg.first, "not a segment of this log (bad header)"}
	}
	r.seg, r.off, r.index = seg, headerSize, seg.first-1
	return nil
}

// Index returns the current frame's index.
func (r *Reader) Index() uint64 { return r.index }

// Payload returns the current frame's payload. It is valid until the next
// call to Next; copy it to keep it.
func (r *Reader) Payload() []byte { return r.payload }

// Err returns the error that stopped the Reader, or nil at the end.
func (r *Reader) Err() error { return r.err }
