package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/ostiary/ostiary/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Each test gets its own empty database: what one creates, another never
// sees; the server listens on loopback.
func TestFreshDatabasePerTest(t *testing.T) {
	ctx := context.Background()
	var urls []string
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			url := pgtest.DB(t)
			urls = append(urls, url)
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'marker'").Scan(&n); err != nil || n != 0 {
				t.Fatalf("a fresh database holds marker (%d), %v", n, err)
			}
			if _, err := conn.Exec(ctx, "CREATE TABLE marker (x int)"); err != nil {
				t.Fatal(err)
			}
			var addr string
			if err := conn.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr); err != nil || addr != "127.0.0.1" {
				t.Errorf("server address %q, %v", addr, err)
			}
		})
	}
	if len(urls) == 2 && urls[0] == urls[1] {
		t.Errorf("two tests shared database %s", urls[0])
	}
}
