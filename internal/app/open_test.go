package app_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
)

func serveConfig(dir string) config.Config {
	c := config.Default()
	c.DataDir, c.Listen = dir, "127.0.0.1:0"
	return c
}

func open(dir string) error {
	_, err := openWith(serveConfig(dir))
	return err
}

func openWith(cfg config.Config) (*app.App, error) {
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err == nil {
		a.Close(context.Background())
	}
	return a, err
}

// Start-up reports a missing, incomplete, foreign or corrupt data directory
// plainly, and refuses schemas it does not know.
func TestOpenReportsBadDataDir(t *testing.T) {
	t.Parallel()
	good := func(t *testing.T) string {
		dir := t.TempDir()
		if _, err := app.Init(context.Background(), dir, time.Now); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, "does not exist"},
		{"empty", func(t *testing.T) string { return t.TempDir() }, "not initialised"},
		{"no signing key", func(t *testing.T) string {
			d := good(t)
			os.Remove(filepath.Join(d, "keys", "audit-signing.key"))
			return d
		}, "missing keys/audit-signing.key"},
		{"corrupt database", func(t *testing.T) string {
			d := good(t)
			os.WriteFile(filepath.Join(d, "ostiary.db"), []byte("this is not sqlite at all, not even close......................................................................"), 0o600)
			return d
		}, "not a database or is corrupt"},
		{"future schema", func(t *testing.T) string {
			d := good(t)
			db, _ := sql.Open("sqlite", "file:"+filepath.Join(d, "ostiary.db"))
			defer db.Close()
			if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"); err != nil {
				t.Fatal(err)
			}
			return d
		}, "newer than this ostiary supports"},
		{"world-readable key", func(t *testing.T) string {
			d := good(t)
			os.Chmod(filepath.Join(d, "keys", "apikey-hmac.key"), 0o644)
			return d
		}, "readable by its owner only"},
		{"forged checkpoint", func(t *testing.T) string {
			d := good(t)
			b, _ := os.ReadFile(filepath.Join(d, "audit.checkpoint"))
			os.WriteFile(filepath.Join(d, "audit.checkpoint"), []byte(strings.Replace(string(b), `"seq":1`, `"seq":2`, 1)), 0o600)
			return d
		}, "invalid signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := open(c.setup(t))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open = %v, want %q", err, c.want)
			}
		})
	}
}

func TestInitRefusesInitialisedDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := app.Init(context.Background(), dir, time.Now); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "keys", "audit-signing.key"))
	_, err := app.Init(context.Background(), dir, time.Now)
	if err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Fatalf("second Init = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "keys", "audit-signing.key"))
	if string(before) != string(after) {
		t.Fatal("second Init changed the signing key")
	}
	for _, f := range []string{"keys/audit-signing.key", "keys/apikey-hmac.key"} {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %#o", f, st.Mode().Perm())
		}
	}
}

// Two servers never extend the same chain.
func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	err := open(s.Dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another ostiary") {
		t.Fatalf("second Open = %v", err)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	if r := s.Do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Errorf("healthz %d", r.Status)
	}
	if r := s.Do("GET", "/readyz", "", nil); r.Status != 200 {
		t.Errorf("readyz %d", r.Status)
	}
	if r := s.Do("GET", "/nothing", "", nil); r.Status != 404 {
		t.Errorf("unknown path %d", r.Status)
	}
}

// The identity assertion key is published, and a data directory from before
// it existed gets one on start.
func TestJWKS(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	r := s.Do("GET", "/.well-known/jwks.json", "", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/jwk-set+json" || !strings.Contains(string(r.Body), `"crv":"Ed25519"`) {
		t.Fatalf("jwks: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	s.Stop()
	os.Remove(filepath.Join(s.Dir, "keys", "identity-signing.key"))
	if err := open(s.Dir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(s.Dir, "keys", "identity-signing.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity key not recreated: %v", err)
	}
}
