package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// watched is a file of the database as the store opened it, held open
// (read-only, never closed before SQLite's own descriptors: closing a
// descriptor drops the process's POSIX locks on the file).
type watched struct {
	path string
	info os.FileInfo
	f    *os.File
}

// StorageFault looks at the files at most every checkEvery (an fstat of
// each held descriptor), and at their paths at most every pathEvery.
const (
	checkEvery = 10 * time.Millisecond
	pathEvery  = 100 * time.Millisecond
)

// watchFiles notes the identity (device and inode) of the database file
// and of its -wal and -shm files. The store holds a connection open for
// its lifetime (pin), so SQLite itself never removes and recreates them.
func (s *Store) watchFiles() error {
	for _, p := range []string{s.path, s.path + "-wal", s.path + "-shm"} {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) && p != s.path {
			continue
		}
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		s.files = append(s.files, watched{p, fi, f})
	}
	return nil
}

// closeFiles closes the held descriptors, after SQLite's.
func (s *Store) closeFiles() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, f := range s.files {
		f.f.Close()
	}
	s.files = nil
}

// StorageFault reports whether the database's files are still the ones
// the store opened: a file deleted, renamed or replaced under a running
// server takes every later write with it, and no write reports it. It
// also reports an earlier storage failure of a write: once one has
// happened, the store writes nothing more. The audit writer asks after
// every batch, so it is cheap: at most every checkEvery an fstat per file
// (has it lost its last name: deleted, or replaced by a rename over it?),
// and at most every pathEvery a stat of each path (same device and inode:
// renamed away, replaced). Stat-ing the paths after every commit instead
// cost a one-client writer about 60 µs per record (a quarter of its
// commit; BenchmarkWriterSerial, interleaved runs on the 2-core CI
// machine); so under load a batch committed up to checkEvery after its
// file was deleted may still be acknowledged.
func (s *Store) StorageFault() error {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if se := s.down.Load(); se != nil {
		return se
	}
	now := time.Now()
	if now.Sub(s.checked) < checkEvery {
		return nil
	}
	s.checked = now
	byPath := now.Sub(s.pathChecked) >= pathEvery
	if byPath {
		s.pathChecked = now
	}
	for i, f := range s.files {
		se := unlinked(f)
		if se == nil && byPath {
			se = moved(f)
		}
		if se == nil {
			continue
		}
		if i == 0 { // the database file itself
			if note := s.setAsideWAL(); note != "" {
				se.Err = fmt.Errorf("%w; %s", se.Err, note)
			}
		}
		return s.fence(se)
	}
	return nil
}

// unlinked says whether f's file has lost its last name, or nil.
func unlinked(f watched) *audit.StorageError {
	fi, err := f.f.Stat()
	if err != nil {
		return &audit.StorageError{Cause: "database file " + filepath.Base(f.path) + " unreadable", Err: err}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return &audit.StorageError{Cause: "database file " + filepath.Base(f.path) + " deleted or replaced",
			Err: fmt.Errorf("%s: the file opened at start has no name any more", f.path)}
	}
	return nil
}

// moved says how f's path no longer names the file opened, or nil.
func moved(f watched) *audit.StorageError {
	fi, err := os.Stat(f.path)
	name := filepath.Base(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &audit.StorageError{Cause: "database file " + name + " deleted or renamed", Err: err}
	case err != nil:
		return &audit.StorageError{Cause: "database file " + name + " unreadable", Err: err}
	case !os.SameFile(f.info, fi):
		return &audit.StorageError{Cause: "database file " + name + " replaced", Err: fmt.Errorf("%s is no longer the file opened at start", f.path)}
	}
	return nil
}

// setAsideWAL renames the -wal file, if it is still the one the store
// writes, once the database file it belongs to was moved: at the next
// start SQLite would otherwise replay it onto whatever file now has the
// name, mixing pages of two databases. It is kept, not deleted: it holds
// the changes since the moved file's last checkpoint. It returns what it
// did, for the operator.
func (s *Store) setAsideWAL() string {
	wal := s.path + "-wal"
	for _, f := range s.files {
		if f.path != wal {
			continue
		}
		if fi, err := os.Stat(wal); err != nil || !os.SameFile(f.info, fi) {
			return ""
		}
		aside := fmt.Sprintf("%s.orphaned-%d", wal, time.Now().Unix())
		if err := os.Rename(wal, aside); err != nil {
			return fmt.Sprintf("its write-ahead log %s could not be set aside (%v): do not start on this directory before moving it away", wal, err)
		}
		return fmt.Sprintf("its write-ahead log (the changes since that file's last checkpoint) was moved to %s, so that it is not replayed onto another file", aside)
	}
	return ""
}

// fence makes the store refuse every later write; the first cause stays.
func (s *Store) fence(se *audit.StorageError) *audit.StorageError {
	s.down.CompareAndSwap(nil, se)
	return s.down.Load()
}

// writable refuses a write once the storage has failed.
func (s *Store) writable(op string) error {
	if s.w == nil {
		return fault.New(fault.Unavailable, "store opened read-only")
	}
	if se := s.down.Load(); se != nil {
		return fault.Wrap(fault.Unavailable, op, se)
	}
	return nil
}

// wrote passes on the result of a write, fencing the store if it failed
// for a storage failure: no retry on the same files. After any failed
// write the next StorageFault looks at the files and their paths at once.
func (s *Store) wrote(err error) error {
	if err == nil {
		return nil
	}
	var se *audit.StorageError
	if errors.As(err, &se) {
		s.fence(se)
	}
	s.watchMu.Lock()
	s.checked, s.pathChecked = time.Time{}, time.Time{}
	s.watchMu.Unlock()
	return err
}

// begin starts a write transaction, waiting for the connection and for
// the database's lock no longer than ctx's deadline (modernc's busy
// handler honours it). The transaction is not bound to that deadline once
// begun: database/sql would roll it back halfway through its work. done
// releases what begin set up; call it after Commit or Rollback.
func (s *Store) begin(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(s.timeout)
	}
	txCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	wait := time.AfterFunc(time.Until(dl), cancel)
	tx, err = s.w.BeginTx(txCtx, nil)
	if !wait.Stop() && err == nil { // the deadline came as it began: database/sql rolls it back
		tx.Rollback()
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return tx, cancel, nil
}

// bounded gives ctx a deadline d from now, unless it has an earlier one:
// no wait on the store is unbounded.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
