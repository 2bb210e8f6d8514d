package postgres_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ostiary/ostiary/internal/store/postgres"
	"github.com/ostiary/ostiary/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Replicas starting together on an empty database all open it, and the
// schema is made once: one row per migration, every table once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, url, postgres.Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if err := stores[i].Ping(ctx); err != nil {
			t.Errorf("ping %d: %v", i, err)
		}
		stores[i].Close()
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, maxv int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&rows, &maxv); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion() || maxv != postgres.SchemaVersion() {
		t.Errorf("schema_migrations holds %d rows up to %d; want %d", rows, maxv, postgres.SchemaVersion())
	}
	var indexRows int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM audit_index").Scan(&indexRows); err != nil || indexRows != 1 {
		t.Errorf("audit_index holds %d rows (%v); want 1", indexRows, err)
	}
}

// A database with a schema newer than this binary is refused, and a
// read-only open never migrates.
func TestOpenRefusals(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	if _, err := postgres.Open(ctx, url, postgres.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "run ostiary serve once") {
		t.Errorf("read-only open of an empty database: %v", err)
	}
	st, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url, postgres.Options{}); err == nil || !strings.Contains(err.Error(), "newer than this ostiary") {
		t.Errorf("open of a newer schema: %v", err)
	}
	// A bad URL is refused without being echoed (it may hold a password).
	if _, err := postgres.Open(ctx, "postgres://u:s3cret@127.0.0.1:1/db?sslmode=bogus", postgres.Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a bad URL: %v", err)
	}
}
