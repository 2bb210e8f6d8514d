// Package wal is the audit chain's durable copy: an append-only log of
// opaque payloads (canonical records) in CRC-framed, preallocated segment
// files. A batch is one write and one fdatasync; any write or sync error
// stops the log for good; Open truncates a torn final batch and refuses
// damage anywhere else. See DESIGN.md.
package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// DefaultSegmentSize is the size of a segment file unless Options say
// otherwise: PostgreSQL's WAL segment size.
const DefaultSegmentSize = 16 << 20

// Options configure a Log.
type Options struct {
	// SegmentSize is the size each new segment is preallocated to (from
	// 4 KiB to 1 GiB; default DefaultSegmentSize). A batch must fit in one.
	SegmentSize int64
	FS          FS // default OS
}

var (
	// ErrFailed marks every error of a log that has failed: after a write
	// or sync error it accepts nothing until it is opened again.
	ErrFailed = errors.New("wal: the audit log failed; it accepts no more records until a restart")
	// ErrClosed is returned by a closed log.
	ErrClosed = errors.New("wal: the audit log is closed")
	// ErrTooLarge refuses a batch that cannot fit in one segment. The log
	// stays usable.
	ErrTooLarge = errors.New("wal: batch larger than a segment")
)

// CorruptError names the first damaged place in the log, found by Open or
// a Reader: the log cannot be trusted past it.
type CorruptError struct {
	Segment string // the segment file
	Offset  int64  // byte offset in it
	Index   uint64 // the frame expected there
	Problem string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: audit log damaged in %s at byte %d (frame %d): %s", e.Segment, e.Offset, e.Index, e.Problem)
}

const (
	lockName = "LOCK"
	nextName = "next.tmp" // the next segment, being prepared
	segExt   = ".wal"
)

// segName names the segment whose first frame is numbered first.
func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segExt) }

type segment struct {
	path  string
	first uint64 // index of its first frame
}

// Log is an open audit log. AppendBatch and Close are for one goroutine at
// a time (the audit writer's); Last, Err and Reader may be called from any,
// and never wait for the disk.
type Log struct {
	dir  string
	fs   FS
	size int64 // of new segments
	lock io.Closer

	// owned by the writing goroutine
	tail     File
	tailSize int64
	buf      []byte
	next     chan prepared // the next segment, made in the background
	waiting  bool          // a prepared segment is yet to arrive on next

	mu        sync.Mutex // guards what other goroutines read
	segs      []segment  // oldest first; the last one is the tail
	off       int64      // where the next batch goes in the tail
	last      uint64     // index of the last acknowledged frame
	failed    error      // sticky
	closed    bool
	recovered Recovery
}

type prepared struct {
	f   File
	err error
}

// Recovery says what Open cut off the tail: the remains of a batch whose
// write was never acknowledged.
type Recovery struct {
	Segment string // "" if nothing was cut
	Offset  int64  // where the cut begins
	Bytes   int64  // bytes zeroed from there on, up to the last nonzero one
}

// Open opens the log in dir, creating it if needed, after checking every
// frame of every segment. A torn tail of the last segment (what a crash
// during a batch leaves) is zeroed away; damage anywhere else is a
// *CorruptError and the log is not opened.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentSize < 4<<10 || opts.SegmentSize > 1<<30 {
		return nil, fmt.Errorf("wal: segment size %d is not between 4 KiB and 1 GiB", opts.SegmentSize)
	}
	if opts.FS == nil {
		opts.FS = OS
	}
	l := &Log{dir: dir, fs: opts.FS, size: opts.SegmentSize, next: make(chan prepared, 1)}
	if err := l.fs.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lock, err := l.fs.Lock(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %s is in use by another process: %w", dir, err)
	}
	l.lock = lock
	if err := l.recover(); err != nil {
		if l.tail != nil {
			l.tail.Close()
		}
		lock.Close()
		return nil, err
	}
	l.prepare()
	return l, nil
}

// AppendBatch appends one frame per payload, numbered Last()+1 onwards, with
// one write and one sync, and returns once they are durable. If it fails,
// none of the batch is acknowledged and, unless the error is ErrTooLarge,
// the log has failed: every later call returns the same error.
func (l *Log) AppendBatch(payloads [][]byte) error {
	l.mu.Lock()
	off, last, err := l.off, l.last, l.failed
	if l.closed {
		err = ErrClosed
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	size := 0
	for _, p := range payloads {
		if len(p) > maxPayload {
			return ErrTooLarge
		}
		size += frameSize(len(p))
	}
	if len(payloads) == 0 {
		return nil
	}
	if off+int64(size) > l.tailSize {
		if int64(size) > l.size-int64(headerSize) {
			return fmt.Errorf("%w: %d bytes, room for %d", ErrTooLarge, size, l.size-int64(headerSize))
		}
		if err := l.rotate(last + 1); err != nil {
			return l.fail(err)
		}
		off = int64(headerSize)
	}
	b := l.buf[:0]
	for i, p := range payloads {
		b = appendFrame(b, last+1+uint64(i), p, i == len(payloads)-1)
	}
	l.buf = b
	path := l.tailPath()
	if n, err := l.tail.WriteAt(b, off); err != nil || n != len(b) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return l.fail(fmt.Errorf("write %s: %w", path, err))
	}
	if err := l.tail.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %w", path, err))
	}
	l.mu.Lock()
	l.off, l.last = off+int64(len(b)), last+uint64(len(payloads))
	l.mu.Unlock()
	return nil
}

// fail makes the log failed for good, with err as the reason, and returns
// the error every later append gets.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return l.failed
}

func (l *Log) tailPath() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[len(l.segs)-1].path
}

// Check looks whether the segment being appended to is still the file its
// name gives (not deleted, renamed away or replaced under the running
// server: a batch written into it would be durable where no one will look).
// If not, the log fails for good and Check returns why. On a file system
// that cannot tell (tests' in-memory ones), it checks nothing. For the
// appending goroutine.
func (l *Log) Check() error {
	if err := l.Err(); err != nil {
		return err
	}
	f, ok := l.tail.(osFile)
	if !ok {
		return nil
	}
	path := l.tailPath()
	same, err := f.sameFile(path)
	if err != nil {
		return l.fail(fmt.Errorf("check %s: %w", path, err))
	}
	if !same {
		return l.fail(fmt.Errorf("%s was deleted, renamed or replaced while in use", path))
	}
	return nil
}

// FrameSize is the bytes a frame holding n payload bytes takes in a segment.
func FrameSize(n int) int { return frameSize(n) }

// MaxBatchBytes is the most frame bytes one AppendBatch takes: what fits
// in a segment after its header.
func (l *Log) MaxBatchBytes() int64 { return l.size - int64(headerSize) }

// Last returns the index of the last acknowledged frame (0 if none).
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Err returns the error the log failed with, or nil while it is healthy.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Recovered says what Open cut off the tail.
func (l *Log) Recovered() Recovery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recovered
}

// Close releases the log's files and lock. Every acknowledged batch is
// already durable.
func (l *Log) Close() error {
	l.mu.Lock()
	closed := l.closed
	l.closed = true
	l.mu.Unlock()
	if closed {
		return nil
	}
	if l.waiting {
		if p := <-l.next; p.f != nil {
			p.f.Close()
			l.fs.Remove(filepath.Join(l.dir, nextName))
		}
	}
	err := l.tail.Close()
	if lerr := l.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// rotate makes the prepared segment the tail, named for frame first.
func (l *Log) rotate(first uint64) error {
	p := <-l.next
	l.waiting = false
	if p.err != nil {
		return fmt.Errorf("prepare the next segment: %w", p.err)
	}
	old := l.tail
	l.tail = p.f // from here on, Close closes it whatever happens
	if err := old.Close(); err != nil {
		return fmt.Errorf("close %s: %w", l.tailPath(), err)
	}
	seg := segment{filepath.Join(l.dir, segName(first)), first}
	if err := l.fs.Rename(filepath.Join(l.dir, nextName), seg.path); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	l.mu.Lock()
	l.segs, l.off = append(l.segs, seg), int64(headerSize)
	l.mu.Unlock()
	l.tailSize = l.size
	l.prepare()
	return nil
}

// prepare makes the next segment in the background, so that rotating
// costs a rename. A failure fails the log at once.
func (l *Log) prepare() {
	l.waiting = true
	go func() {
		f, err := makeSegment(l.fs, filepath.Join(l.dir, nextName), l.size)
		if err != nil {
			l.fail(fmt.Errorf("prepare the next segment: %w", err))
		}
		l.next <- prepared{f, err}
	}()
}

// makeSegment creates a segment of size bytes: the header, then zeros,
// written and synced, so that later writes overwrite allocated blocks and
// their fdatasync has no metadata to flush.
func makeSegment(fs FS, path string, size int64) (File, error) {
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, err
	}
	chunk := make([]byte, min(size, 1<<20))
	copy(chunk, magic)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		n := min(int64(len(chunk)), size-off)
		if _, err = f.WriteAt(chunk[:n], off); err != nil {
			break
		}
		clear(chunk[:headerSize])
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		fs.Remove(path)
		return nil, err
	}
	return f, nil
}
