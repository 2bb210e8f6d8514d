// Package sqlite is the embedded store: one SQLite file in WAL mode with
// foreign keys, a busy timeout and synchronous=FULL, so a committed
// transaction survives power loss. Writes go through a single connection;
// reads use a small read-only pool.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/ostiary/ostiary/internal/fault"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the SQLite store.
type Store struct {
	path string
	w    *sql.DB // one connection: every write, in BEGIN IMMEDIATE transactions
	r    *sql.DB // read-only pool
	queries

	appendMu sync.Mutex
	appendSt *sql.Stmt // the audit insert, prepared once on the write connection
}

// Options controls Open.
type Options struct {
	// Create makes Open create a new database; without it a missing file is
	// an error.
	Create bool
	// ReadOnly opens only for reading (audit verify); no migrations run.
	ReadOnly bool
}

// Open opens (or with opts.Create, creates) the database at path, applies
// pending migrations and refuses schemas newer than this binary knows.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	_, statErr := os.Stat(path)
	switch {
	case opts.Create && statErr == nil:
		return nil, fmt.Errorf("%s already exists", path)
	case !opts.Create && errors.Is(statErr, fs.ErrNotExist):
		return nil, fmt.Errorf("no database at %s", path)
	case !opts.Create && statErr != nil:
		return nil, fmt.Errorf("cannot read %s: %w", path, statErr)
	}
	common := "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	s := &Store{path: path}
	var err error
	if !opts.ReadOnly {
		if s.w, err = sql.Open("sqlite", dsn(path, common+"&_pragma=journal_mode(WAL)&_txlock=immediate")); err != nil {
			return nil, err
		}
		s.w.SetMaxOpenConns(1)
		s.w.SetConnMaxLifetime(0)
		s.w.SetConnMaxIdleTime(0)
	}
	if s.r, err = sql.Open("sqlite", dsn(path, common+"&_pragma=query_only(1)")); err != nil {
		s.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	s.queries = queries{q: s.r}
	if err := s.prepare(ctx, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dsn builds a SQLite URI filename; '%', '?' and '#' in the path are escaped.
func dsn(path, params string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?" + params
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes both pools.
func (s *Store) Close() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(errs...)
}

// Ping checks that the database answers, for readiness.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&n)
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("sqlite: bad migration name %s", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{v, e.Name(), string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("sqlite: migrations must be numbered 1, 2, 3…; found %s", m.name)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// prepare checks the file is an Ostiary database and brings its schema up
// to date.
func (s *Store) prepare(ctx context.Context, opts Options) error {
	var tables int
	err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").Scan(&tables)
	if err != nil {
		if isCode(err, 26) || isCode(err, 11) { // SQLITE_NOTADB, SQLITE_CORRUPT
			return fmt.Errorf("%s is not a database or is corrupt", s.path)
		}
		return fmt.Errorf("cannot read %s: %w", s.path, err)
	}
	current := 0
	if tables == 1 {
		if err := s.r.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("cannot read the schema version of %s: %w", s.path, err)
		}
	} else if !opts.Create {
		return fmt.Errorf("%s is not an Ostiary database (no schema version)", s.path)
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	if current > len(ms) {
		return fmt.Errorf("%s has schema version %d, newer than this ostiary supports (%d): upgrade ostiary", s.path, current, len(ms))
	}
	if current == len(ms) {
		return nil
	}
	if opts.ReadOnly {
		return fmt.Errorf("%s has schema version %d; this ostiary needs %d (run ostiary serve once to migrate)", s.path, current, len(ms))
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"); err != nil {
		return err
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.version, m.name, micros(time.Now())); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// isCode reports whether err is a SQLite error with the given primary code.
func isCode(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == code
}

const (
	codeConstraint = 19
	extUnique      = 19 | 8<<8 // SQLITE_CONSTRAINT_UNIQUE
	extPrimaryKey  = 19 | 6<<8 // SQLITE_CONSTRAINT_PRIMARYKEY
)

func isUnique(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == extUnique || se.Code() == extPrimaryKey)
}

// classify maps a driver error to a fault kind. Messages stay generic; the
// driver's text is kept as the cause, for the log only.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fault.Wrap(fault.NotFound, op, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case codeConstraint:
			if isUnique(err) {
				return fault.Wrap(fault.Conflict, op, err)
			}
			return fault.Wrap(fault.Invalid, op, err)
		case 5, 6, 8, 10, 11, 13, 14, 26: // BUSY LOCKED READONLY IOERR CORRUPT FULL CANTOPEN NOTADB
			return fault.Wrap(fault.Unavailable, op, err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Unavailable, op, err)
	}
	return fault.Wrap(fault.Internal, op, err)
}

// micros converts a time to stored form; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros.
func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// SetQueryOnlyForTest makes the write connection refuse writes, exactly as a
// read-only or failed disk makes SQLite refuse them. Tests use it to prove
// that Ostiary fails closed.
func (s *Store) SetQueryOnlyForTest(on bool) error {
	_, err := s.w.Exec(fmt.Sprintf("PRAGMA query_only = %t", on))
	return err
}
