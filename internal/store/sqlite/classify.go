package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"syscall"

	"modernc.org/sqlite"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// SQLite result codes (https://sqlite.org/rescode.html). Errors carry the
// extended code; its low byte is the primary one.
const (
	codeBusy       = 5
	codeLocked     = 6
	codeReadOnly   = 8
	codeInterrupt  = 9
	codeIOErr      = 10
	codeCorrupt    = 11
	codeFull       = 13
	codeCantOpen   = 14
	codeConstraint = 19
	codeNotADB     = 26

	extUnique          = codeConstraint | 8<<8 // SQLITE_CONSTRAINT_UNIQUE
	extPrimaryKey      = codeConstraint | 6<<8 // SQLITE_CONSTRAINT_PRIMARYKEY
	extReadOnlyDBMoved = codeReadOnly | 4<<8   // SQLITE_READONLY_DBMOVED
)

// codeClass classifies a SQLite result code: its fault kind and, for a
// failure of the storage itself (after which writing on the same files is
// unsafe), a few words naming it. Busy, locked, interrupted (a deadline)
// and cannot-open (e.g. out of file descriptors) are worth another try.
func codeClass(code int) (fault.Kind, string) {
	switch code & 0xff {
	case codeConstraint:
		if code == extUnique || code == extPrimaryKey {
			return fault.Conflict, ""
		}
		return fault.Invalid, ""
	case codeBusy, codeLocked, codeInterrupt, codeCantOpen:
		return fault.Unavailable, ""
	case codeIOErr: // every SQLITE_IOERR_*: write, fsync, short read, truncate…
		return fault.Unavailable, "disk I/O error"
	case codeFull:
		return fault.Unavailable, "disk full"
	case codeCorrupt, codeNotADB:
		return fault.Unavailable, "database corrupt"
	case codeReadOnly: // every SQLITE_READONLY_*: the file, its -shm, a remount
		if code == extReadOnlyDBMoved {
			return fault.Unavailable, "database file moved"
		}
		return fault.Unavailable, "database read-only"
	}
	return fault.Internal, ""
}

// errnoCause names a storage failure that reaches us as a system error.
func errnoCause(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "disk full"
	case errors.Is(err, syscall.EIO):
		return "disk I/O error"
	case errors.Is(err, syscall.EROFS):
		return "file system read-only"
	}
	return ""
}

// storageCause names, in a few words, a failure of the storage itself, or
// returns "" for any other error.
func storageCause(err error) string {
	var se *sqlite.Error
	if errors.As(err, &se) {
		_, cause := codeClass(se.Code())
		return cause
	}
	return errnoCause(err)
}

// isCode reports whether err is a SQLite error with the given primary code.
func isCode(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == code
}

func isUnique(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == extUnique || se.Code() == extPrimaryKey)
}

// classify maps a driver error to a fault kind; a storage failure is
// wrapped in an *audit.StorageError as well, which stops the audit writer
// and fences the store. Messages stay generic; the driver's text is kept
// as the cause, for the log only.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fault.Wrap(fault.NotFound, op, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch kind, cause := codeClass(se.Code()); {
		case cause != "":
			return fault.Wrap(kind, op, &audit.StorageError{Cause: cause, Err: err})
		case kind != fault.Internal:
			return fault.Wrap(kind, op, err)
		}
	}
	if cause := errnoCause(err); cause != "" {
		return fault.Wrap(fault.Unavailable, op, &audit.StorageError{Cause: cause, Err: err})
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Unavailable, op, err)
	}
	return fault.Wrap(fault.Internal, op, err)
}
