// Package pgtest starts a throwaway PostgreSQL cluster for a test binary
// and gives each test a fresh database in it. The cluster runs Debian's
// PostgreSQL 15 binaries (or those under OSTIARY_PG_BIN) as a child
// process listening on 127.0.0.1 only, on a free port, with no Unix
// socket, fsync off and initdb --no-sync: it holds only test data.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and pgtest.DB(t) in each test. Without the binaries, DB skips the test
// with the reason, unless CI=1 or OSTIARY_REQUIRE_POSTGRES=1, when it
// fails it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBin is where Debian installs PostgreSQL 15's server binaries.
const DefaultBin = "/usr/lib/postgresql/15/bin"

// cluster is the one cluster of this test binary.
type cluster struct {
	dir  string
	port int
	cmd  *exec.Cmd
	err  error // why there is no cluster
}

// the cluster Main started; set once, before any test runs.
var current *cluster

// Required reports whether a missing PostgreSQL fails tests rather than
// skipping them.
func Required() bool {
	return os.Getenv("CI") == "1" || os.Getenv("OSTIARY_REQUIRE_POSTGRES") == "1"
}

// Main starts the cluster, runs the tests and stops the cluster by its
// PID; it returns the exit code for os.Exit.
func Main(m *testing.M) int {
	c, err := start()
	if err != nil {
		current = &cluster{err: err}
		return m.Run()
	}
	current = c
	code := m.Run()
	if err := c.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// DB creates a fresh, empty database for t (dropped when t ends) and
// returns its connection string.
func DB(t testing.TB) string {
	t.Helper()
	if current == nil {
		t.Fatal("pgtest: DB called without pgtest.Main in TestMain")
	}
	if current.err != nil {
		if Required() {
			t.Fatalf("PostgreSQL is required here (CI or OSTIARY_REQUIRE_POSTGRES): %v", current.err)
		}
		t.Skipf("no PostgreSQL for this test: %v", current.err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := current.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := current.exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return current.url(name)
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// exec runs one statement in the maintenance database.
func (c *cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// start runs initdb in a new temporary directory and starts postgres on a
// free loopback port, waiting until it accepts connections.
func start() (*cluster, error) {
	bin := os.Getenv("OSTIARY_PG_BIN")
	if bin == "" {
		bin = DefaultBin
	}
	for _, p := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			return nil, fmt.Errorf("%s not found (install postgresql-15, or set OSTIARY_PG_BIN)", filepath.Join(bin, p))
		}
	}
	dir, err := os.MkdirTemp("", "ostiary-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	cred, err := runAs(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "--no-sync", "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "-D", data)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if c.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-k", "",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := c.wait(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// wait polls until the server accepts connections (at most 30 s).
func (c *cluster) wait() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.exec(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
			return fmt.Errorf("postgres did not accept connections within 30s: %v; log: %s", err, strings.TrimSpace(string(log)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGINT (fast shutdown) to the server's PID, waits for it
// (SIGKILL after 20 s) and removes the cluster's directory.
func (c *cluster) stop() error {
	defer os.RemoveAll(c.dir)
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("stop postgres (pid %d): %w", c.cmd.Process.Pid, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return err
		}
		return nil
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		<-done
		return fmt.Errorf("postgres (pid %d) did not stop within 20s; killed", c.cmd.Process.Pid)
	}
}

// runAs returns the credential to run the server with: none (ourselves)
// unless we are root, which initdb refuses; then the postgres user, who is
// given dir.
func runAs(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and there is no postgres user to run the cluster as: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
