package wal

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FS is the file system the log does all its I/O through: OS for real, a
// fault-injecting one (package faultfs) in tests. Names are full paths.
type FS interface {
	MkdirAll(dir string) error
	// ReadDir returns the names of the entries of dir.
	ReadDir(dir string) ([]string, error)
	// OpenFile opens name with os.O_* flags; created files get mode 0600.
	OpenFile(name string, flag int) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	// SyncDir makes dir's entries (creations, renames, removals) durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on dir, held until the closer is closed,
	// so that two processes never append to the same log.
	Lock(dir string) (io.Closer, error)
}

// File is an open segment. The log only reads and writes at explicit
// offsets, so a File has no position.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes the data written so far durable (fdatasync on Linux).
	Sync() error
	Size() (int64, error)
	Close() error
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }

func (osFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, err
}

func (osFS) OpenFile(name string, flag int) (File, error) {
	f, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (osFS) Lock(dir string) (io.Closer, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := FlockBriefly(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil // closing the file releases the lock
}

// FlockBriefly takes an exclusive flock on f, trying for up to a second:
// a lock lives with its open file description, which a child process of
// this one shares from fork until its exec closes the descriptor (close
// on exec). So a lock just released here (a data directory initialised,
// then opened) can look held for as long as a concurrent fork takes to
// exec; another process really holding it still fails, a second later.
func FlockBriefly(f *os.File) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type osFile struct{ *os.File }

func (f osFile) Sync() error { return datasync(f.File) }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// sameFile reports whether path still names the file f has open: not
// deleted, renamed away or replaced by another file.
func (f osFile) sameFile(path string) (bool, error) {
	open, err := f.Stat()
	if err != nil {
		return false, err
	}
	named, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(open, named), nil
}
