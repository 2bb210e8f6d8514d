// Package sqlite is the embedded store: one SQLite file in WAL mode with
// foreign keys, a busy timeout and synchronous=FULL, so a committed
// transaction survives power loss. Writes go through a single connection;
// reads use a small read-only pool.
//
// It fails closed on storage faults (classify.go, watch.go): driver
// errors of the storage itself (I/O errors, a full disk, corruption, a
// read-only file) are marked as *audit.StorageError, after which the store
// writes nothing more; its files are watched for being deleted or
// replaced; every wait for a lock has a deadline (Options.Timeout); and a
// database that fails PRAGMA quick_check is refused at open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store"
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

	timeout              time.Duration // bound on every wait for a lock
	pin                  *sql.Conn     // held open, so SQLite never recreates -wal and -shm
	files                []watched     // the files opened, by identity; the database first
	watchMu              sync.Mutex    // one StorageFault at a time; guards checked and pathChecked
	checked, pathChecked time.Time
	down                 atomic.Pointer[audit.StorageError] // set once a write failed for the storage itself
}

// Options controls Open.
type Options struct {
	// Create makes Open create a new database; without it a missing file is
	// an error.
	Create bool
	// ReadOnly opens only for reading (audit verify); no migrations run.
	ReadOnly bool
	// Timeout bounds every wait for the database's lock (busy_timeout)
	// and the store's own writes; default 2s.
	Timeout time.Duration
}

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 2 * time.Second

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
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)", opts.Timeout.Milliseconds())
	s := &Store{path: path, timeout: opts.Timeout}
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
	s.r.SetMaxOpenConns(5) // one of them pinned
	s.queries = queries{q: s.r}
	if err := s.prepare(ctx, opts); err != nil {
		s.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		if err := s.hold(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("cannot open %s: %w", path, err)
		}
	}
	return s, nil
}

// hold pins a connection that has read the database (so its -wal and -shm
// exist and stay) and notes the identity of every file.
func (s *Store) hold(ctx context.Context) error {
	var err error
	if s.pin, err = s.r.Conn(ctx); err != nil {
		return err
	}
	var n int
	if err := s.pin.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		return err
	}
	return s.watchFiles()
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
	if s.pin != nil {
		errs = append(errs, s.pin.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	s.closeFiles()
	return errors.Join(errs...)
}

// Ping checks, for readiness, that the database answers a read of its
// tables within ctx and that its files are still the ones opened.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.StorageFault(); err != nil {
		return fault.Wrap(fault.Unavailable, "ping", err)
	}
	var n int
	return classify("ping", s.r.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n))
}

func migrations() ([]store.Migration, error) { return store.Migrations(migrationFS, "sqlite") }

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
		if isCode(err, codeCorrupt) && !opts.ReadOnly && !opts.Create {
			return s.corrupt(err.Error())
		}
		if isCode(err, codeNotADB) || isCode(err, codeCorrupt) {
			return fmt.Errorf("%s is not a database or is corrupt", s.path)
		}
		return fmt.Errorf("cannot read %s: %w", s.path, err)
	}
	current := 0
	if tables == 1 {
		if err := s.r.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			if isCode(err, codeCorrupt) && !opts.ReadOnly && !opts.Create {
				return s.corrupt(err.Error())
			}
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
	if !opts.Create && !opts.ReadOnly {
		if err := s.quickCheck(ctx); err != nil {
			return err
		}
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
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.Version, m.Name, micros(time.Now())); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// quickCheck refuses to serve from a damaged database: PRAGMA quick_check
// reads every page and checks the B-trees' structure (about 0.5 ms per
// 1,000 audit records, measured), without the index cross-checks of
// integrity_check.
func (s *Store) quickCheck(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return s.checkFailed(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return s.checkFailed(err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return s.checkFailed(err)
	}
	if len(problems) > 0 {
		return s.corrupt(strings.Join(problems, "; "))
	}
	return nil
}

// checkFailed explains an error of quick_check itself: corruption is
// corruption, anything else (a lock, a deadline) is not.
func (s *Store) checkFailed(err error) error {
	switch cause := storageCause(err); cause {
	case "database corrupt":
		return s.corrupt(err.Error())
	case "":
		return fmt.Errorf("cannot check %s: %w", s.path, err)
	default:
		return fmt.Errorf("cannot read %s (%s): refusing to start; check the disk: %w", s.path, cause, err)
	}
}

// corrupt says plainly what is wrong and what an operator can do.
func (s *Store) corrupt(detail string) error {
	return fmt.Errorf("%s is corrupt (PRAGMA quick_check: %s): refusing to start; restore the data directory from a backup ('ostiary audit verify' reports what of the audit log still checks out)", s.path, detail)
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
