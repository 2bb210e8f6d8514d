// Package faultfs is an in-memory wal.FS for tests that knows what a crash
// would keep and injects the storage faults a durable log must survive:
// failed, short or ENOSPC writes, failed syncs that drop the unsynced pages
// (as Linux may: PostgreSQL's "fsyncgate"), and power loss in the middle of
// a write.
//
// Each file has what reads see (the page cache) and what is on the disk:
// Sync puts the writes made since the last sync on the disk, and a failed
// Sync loses them for good (a later Sync does not write them). Directory entries become durable
// only through SyncDir (directories themselves are durable at once, and a
// truncation at open reaches the disk at once: simplifications the log does
// not depend on). Crash returns the file system a restart after power loss
// would find.
package faultfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// Op is a kind of operation a Fault applies to.
type Op string

const (
	OpOpen    Op = "open"
	OpWrite   Op = "write"
	OpSync    Op = "sync"
	OpRename  Op = "rename"
	OpRemove  Op = "remove"
	OpSyncDir Op = "syncdir"
)

// Fault makes one operation fail.
type Fault struct {
	Op    Op
	Name  string // suffix of the base name it applies to ("" for any)
	After int    // matching operations that succeed first
	Err   error  // what the operation returns
	// Short, for a write, is how many bytes it writes before it stops;
	// with a nil Err, the short count alone reports the failure.
	Short int
	// Halt, for a sync, makes the machine stop at that moment: the sync
	// does nothing (nothing is dropped either) and returns Err. Call Crash
	// to see what the disk kept. A failed sync without Halt drops every
	// unsynced write of the file from the disk's future, while reads still
	// see them.
	Halt bool
}

// ErrInjected is a convenient Err for a Fault.
var ErrInjected = errors.New("faultfs: injected I/O error")

// SectorSize is the unit in which Crash keeps or loses unsynced writes.
const SectorSize = 512

// FS is the in-memory file system. The zero value is not usable: use New.
type FS struct {
	mu      sync.Mutex
	live    map[string]*inode // the namespace as reads see it
	durable map[string]*inode // the namespace as of the last SyncDir
	dirs    map[string]bool
	locks   map[string]bool
	faults  []*Fault
	counts  map[Op]map[string]int
}

type inode struct {
	name    string // base name, for faults and counts
	data    []byte // what reads see
	disk    []byte // what survives a crash
	pending []pendingWrite
}

type pendingWrite struct {
	off int64
	p   []byte
}

// New returns an empty file system.
func New() *FS {
	return &FS{live: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{"/": true, ".": true},
		locks: map[string]bool{}, counts: map[Op]map[string]int{}}
}

// Inject adds a fault.
func (f *FS) Inject(ft Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &ft)
}

// Count returns how many operations op were made on files whose base name
// ends with suffix, failed ones included.
func (f *FS) Count(op Op, suffix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for name, c := range f.counts[op] {
		if strings.HasSuffix(name, suffix) {
			n += c
		}
	}
	return n
}

// hit counts an operation and returns the fault it triggers, if any.
func (f *FS) hit(op Op, name string) *Fault {
	if f.counts[op] == nil {
		f.counts[op] = map[string]int{}
	}
	f.counts[op][name]++
	for i, ft := range f.faults {
		if ft.Op != op || !strings.HasSuffix(name, ft.Name) {
			continue
		}
		if ft.After > 0 {
			ft.After--
			continue
		}
		f.faults = slices.Delete(f.faults, i, i+1)
		return ft
	}
	return nil
}

// Crash returns what a restart after power loss finds: the durable
// directory entries, each file with its synced bytes and, of the writes not
// yet synced, the sectors keep chooses (keep may be nil: none).
func (f *FS) Crash(keep func(name string, sector int64) bool) *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := New()
	for d := range f.dirs {
		g.dirs[d] = true
	}
	copies := map[*inode]*inode{}
	for path, ino := range f.durable {
		c, ok := copies[ino]
		if !ok {
			disk := slices.Clone(ino.disk)
			for _, w := range ino.pending {
				for s := w.off / SectorSize * SectorSize; s < w.off+int64(len(w.p)); s += SectorSize {
					if keep == nil || !keep(ino.name, s) {
						continue
					}
					lo, hi := max(s, w.off), min(s+SectorSize, w.off+int64(len(w.p)))
					disk = writeAt(disk, w.p[lo-w.off:hi-w.off], lo)
				}
			}
			c = &inode{name: filepath.Base(path), data: disk, disk: slices.Clone(disk)}
			copies[ino] = c
		}
		g.live[path], g.durable[path] = c, c
	}
	return g
}

func writeAt(b, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[off:], p)
	return b
}

func (f *FS) MkdirAll(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := filepath.Clean(dir); !f.dirs[d]; d = filepath.Dir(d) {
		f.dirs[d] = true
	}
	return nil
}

func (f *FS) ReadDir(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if !f.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for path := range f.live {
		if filepath.Dir(path) == dir {
			names = append(names, filepath.Base(path))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (f *FS) OpenFile(name string, flag int) (wal.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if ft := f.hit(OpOpen, filepath.Base(name)); ft != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ft.Err}
	}
	ino := f.live[name]
	switch {
	case ino == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ino == nil && !f.dirs[filepath.Dir(name)]:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ino == nil:
		ino = &inode{name: filepath.Base(name)}
		f.live[name] = ino
	case flag&os.O_TRUNC != 0:
		ino.data, ino.disk, ino.pending = nil, nil, nil
	}
	return &file{fs: f, ino: ino, dir: filepath.Dir(name), write: flag&(os.O_RDWR|os.O_WRONLY) != 0}, nil
}

func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	ino := f.live[oldname]
	if ft := f.hit(OpRename, filepath.Base(oldname)); ft != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: ft.Err}
	}
	if ino == nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	delete(f.live, oldname)
	f.live[newname] = ino
	ino.name = filepath.Base(newname)
	return nil
}

func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if ft := f.hit(OpRemove, filepath.Base(name)); ft != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: ft.Err}
	}
	if f.live[name] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(f.live, name)
	return nil
}

func (f *FS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if ft := f.hit(OpSyncDir, filepath.Base(dir)); ft != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: ft.Err}
	}
	for path := range f.durable {
		if filepath.Dir(path) == dir {
			delete(f.durable, path)
		}
	}
	for path, ino := range f.live {
		if filepath.Dir(path) == dir {
			f.durable[path] = ino
		}
	}
	return nil
}

func (f *FS) Lock(dir string) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if f.locks[dir] {
		return nil, syscall.EWOULDBLOCK
	}
	f.locks[dir] = true
	return closer(func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.locks, dir)
		return nil
	}), nil
}

type closer func() error

func (c closer) Close() error { return c() }

type file struct {
	fs     *FS
	ino    *inode
	dir    string
	write  bool
	closed bool
}

// path names the file as it is now called.
func (h *file) path() string { return filepath.Join(h.dir, h.ino.name) }

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, fs.ErrClosed
	}
	if off >= int64(len(h.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed || !h.write {
		return 0, &fs.PathError{Op: "write", Path: h.path(), Err: fs.ErrClosed}
	}
	var err error
	if ft := h.fs.hit(OpWrite, h.ino.name); ft != nil {
		p, err = p[:min(ft.Short, len(p))], ft.Err
		if err != nil {
			err = &fs.PathError{Op: "write", Path: h.path(), Err: err}
		}
	}
	h.ino.data = writeAt(h.ino.data, p, off)
	h.ino.pending = append(h.ino.pending, pendingWrite{off, slices.Clone(p)})
	return len(p), err
}

func (h *file) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return fs.ErrClosed
	}
	if ft := h.fs.hit(OpSync, h.ino.name); ft != nil {
		if !ft.Halt {
			h.ino.pending = nil // marked clean, never written
		}
		return &fs.PathError{Op: "sync", Path: h.path(), Err: ft.Err}
	}
	for _, w := range h.ino.pending {
		h.ino.disk = writeAt(h.ino.disk, w.p, w.off)
	}
	h.ino.pending = nil
	return nil
}

func (h *file) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return int64(len(h.ino.data)), nil
}

func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return fs.ErrClosed
	}
	h.closed = true
	return nil
}
