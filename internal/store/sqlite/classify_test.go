package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
)

// Which driver errors are the storage's own (the audit writer stops for
// good, the store writes nothing more) and which are worth another try.
func TestCodeClass(t *testing.T) {
	for _, c := range []struct {
		name  string
		code  int
		kind  fault.Kind
		cause string
	}{
		{"IOERR", 10, fault.Unavailable, "disk I/O error"},
		{"IOERR_READ", 10 | 1<<8, fault.Unavailable, "disk I/O error"},
		{"IOERR_SHORT_READ", 10 | 2<<8, fault.Unavailable, "disk I/O error"},
		{"IOERR_WRITE", 10 | 3<<8, fault.Unavailable, "disk I/O error"},
		{"IOERR_FSYNC", 10 | 4<<8, fault.Unavailable, "disk I/O error"},
		{"IOERR_TRUNCATE", 10 | 6<<8, fault.Unavailable, "disk I/O error"},
		{"FULL", 13, fault.Unavailable, "disk full"},
		{"CORRUPT", 11, fault.Unavailable, "database corrupt"},
		{"CORRUPT_INDEX", 11 | 3<<8, fault.Unavailable, "database corrupt"},
		{"NOTADB", 26, fault.Unavailable, "database corrupt"},
		{"READONLY", 8, fault.Unavailable, "database read-only"},
		{"READONLY_RECOVERY", 8 | 1<<8, fault.Unavailable, "database read-only"},
		{"READONLY_CANTLOCK", 8 | 2<<8, fault.Unavailable, "database read-only"},
		{"READONLY_DBMOVED", 8 | 4<<8, fault.Unavailable, "database file moved"},
		{"BUSY", 5, fault.Unavailable, ""},
		{"BUSY_SNAPSHOT", 5 | 2<<8, fault.Unavailable, ""},
		{"LOCKED", 6, fault.Unavailable, ""},
		{"INTERRUPT", 9, fault.Unavailable, ""},
		{"CANTOPEN", 14, fault.Unavailable, ""},
		{"CONSTRAINT_UNIQUE", 19 | 8<<8, fault.Conflict, ""},
		{"CONSTRAINT_PRIMARYKEY", 19 | 6<<8, fault.Conflict, ""},
		{"CONSTRAINT_FOREIGNKEY", 19 | 3<<8, fault.Invalid, ""},
		{"CONSTRAINT_CHECK", 19 | 1<<8, fault.Invalid, ""},
		{"ERROR", 1, fault.Internal, ""},
		{"NOMEM", 7, fault.Internal, ""},
		{"MISUSE", 21, fault.Internal, ""},
	} {
		if kind, cause := codeClass(c.code); kind != c.kind || cause != c.cause {
			t.Errorf("%s (%d): %s %q, want %s %q", c.name, c.code, kind, cause, c.kind, c.cause)
		}
	}
}

// Errors that are not the driver's: system errors of the storage are
// storage failures too; a deadline or a missing row is not.
func TestClassifyOtherErrors(t *testing.T) {
	for _, c := range []struct {
		err   error
		kind  fault.Kind
		cause string
	}{
		{&os.PathError{Op: "write", Path: "ostiary.db-wal", Err: syscall.ENOSPC}, fault.Unavailable, "disk full"},
		{fmt.Errorf("fsync: %w", syscall.EIO), fault.Unavailable, "disk I/O error"},
		{&os.PathError{Op: "open", Path: "ostiary.db", Err: syscall.EROFS}, fault.Unavailable, "file system read-only"},
		{context.DeadlineExceeded, fault.Unavailable, ""},
		{context.Canceled, fault.Unavailable, ""},
		{sql.ErrNoRows, fault.NotFound, ""},
		{errors.New("something else"), fault.Internal, ""},
	} {
		err := classify("op", c.err)
		var se *audit.StorageError
		gotCause := ""
		if errors.As(err, &se) {
			gotCause = se.Cause
		}
		if fault.KindOf(err) != c.kind || gotCause != c.cause || !errors.Is(err, c.err) {
			t.Errorf("%v: %v (cause %q), want %s %q", c.err, err, gotCause, c.kind, c.cause)
		}
	}
}
