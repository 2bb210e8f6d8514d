// Package postgres is the store on PostgreSQL, for several Ostiary
// replicas sharing one database (issue 18). Its schema is the SQLite
// store's, in PostgreSQL's types, applied by embedded, numbered
// migrations under a session advisory lock, so replicas starting together
// migrate once and none reads a half-made schema.
//
// So far it opens, migrates and pings; the store interfaces (audit,
// identity, authn, catalog, approval, kill switches, policy, vault) are
// not implemented yet, so serve cannot use it.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the advisory lock key held while migrating: the
// first eight bytes of "ostiary!" as a big-endian int64.
const migrationLock int64 = 0x6f73746961727921

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
}

// Options controls Open.
type Options struct {
	// ReadOnly opens only for reading (audit verify): no migrations run,
	// and a schema that is not up to date is refused.
	ReadOnly bool
}

// Open connects to the database at url (postgres://…), applies pending
// migrations and refuses a schema newer than this binary knows.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors may quote the URL, password included.
		return nil, errors.New("postgres: the connection URL does not parse")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx, opts); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks, for readiness, that the database answers a read of its
// tables within ctx.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		return fault.Wrap(fault.Unavailable, "ping", err)
	}
	return nil
}

func migrations() ([]store.Migration, error) { return store.Migrations(migrationFS, "postgres") }

// SchemaVersion is the newest schema this binary knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// migrate brings the schema up to date on one connection holding the
// migration lock: a replica that waited for it finds the work done.
func (s *Store) migrate(ctx context.Context, opts Options) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: cannot connect: %w", err)
	}
	defer conn.Release()
	if !opts.ReadOnly {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
			return fmt.Errorf("postgres: cannot take the migration lock: %w", err)
		}
		defer func() {
			// Unlock on a context of its own: ctx may be done. If this
			// fails the connection is closed, which releases the lock.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLock); err != nil {
				conn.Conn().Close(uctx)
			}
		}()
	}
	current, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return err
	}
	switch {
	case current > len(ms):
		return fmt.Errorf("the database has schema version %d, newer than this ostiary supports (%d): upgrade ostiary", current, len(ms))
	case current == len(ms):
		return nil
	case opts.ReadOnly:
		return fmt.Errorf("the database has schema version %d; this ostiary needs %d (run ostiary serve once to migrate)", current, len(ms))
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"); err != nil {
		return err
	}
	for _, m := range ms[current:] {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// schemaVersion is the database's schema version; 0 for an empty one.
func schemaVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("postgres: cannot read the schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: cannot read the schema version: %w", err)
	}
	return v, nil
}
