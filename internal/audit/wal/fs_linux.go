package wal

import (
	"os"
	"syscall"
)

// datasync flushes f's data and the metadata needed to read it back, but
// not its times: on a preallocated segment, that is the data alone.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
