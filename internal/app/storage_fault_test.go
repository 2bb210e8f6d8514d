package app_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
)

// Storage faults under a running server, end to end: what a client, the
// upstream, /readyz and the operational log see.
//
//	fault                               | next call          | /readyz                  | after
//	database file deleted / replaced    | 503 + Retry-After  | 503 audit-log stopped    | restart refused, plainly
//	-wal deleted                        | 503 + Retry-After  | 503 audit-log stopped    | restart recovers
//	disk full (tmpfs)                   | 503 + Retry-After  | 503 "disk full"          | stays closed with space free; restart recovers
//	lock held by another process        | 503 within timeout | 503 audit-log failing    | serves again once released
//	database corrupt (stopped server)   | —                  | —                        | refuses to start, plainly

// faultRig is a server with one governed upstream and a user who may call it.
type faultRig struct {
	t     *testing.T
	s     *apptest.Server
	up    *apptest.Upstream
	alice string
}

func newFaultRig(t *testing.T, s *apptest.Server) *faultRig {
	t.Helper()
	up := apptest.NewUpstream(t, s, "fin", true)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "caller", []string{"invoke:fin.*"}, "alice", false)
	alice, _ := newKey(t, s, map[string]any{"user": "alice"})
	return &faultRig{t: t, s: s, up: up, alice: alice}
}

func (g *faultRig) call() apptest.Response {
	return rpc(g.t, g.s, g.alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"1"},`+modern+`}}`,
		modernHeaders("tools/call", "fin.lookup"))
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, s *apptest.Server) (int, map[string]string) {
	t.Helper()
	r := s.Do("GET", "/readyz", "", nil)
	var body map[string]string
	r.JSON(t, &body)
	return r.Status, body
}

// closedFor checks that the server refuses everything at its door because
// its audit log stopped for cause, and that nothing reaches the upstream.
func (g *faultRig) closedFor(t *testing.T, cause string) {
	t.Helper()
	before := len(g.up.Calls())
	if r := g.call(); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "not performed") {
		t.Errorf("a call: %d %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	legacy := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	if r := rpc(g.t, g.s, g.alice, legacy, nil); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("a 2025-era initialize: %d %s", r.Status, r.Body)
	}
	if r := g.s.Do("POST", "/api/v1/users", g.s.AdminKey, map[string]any{"name": "mallory"}); r.Status != http.StatusServiceUnavailable ||
		r.Header.Get("Retry-After") == "" || errorCode(t, r) != "unavailable" {
		t.Errorf("an admin change: %d %s", r.Status, r.Body)
	}
	status, body := readyz(t, g.s)
	if status != http.StatusServiceUnavailable || body["component"] != "audit-log" || body["state"] != "stopped" || !strings.Contains(body["cause"], cause) {
		t.Errorf("readyz: %d %v, want the audit log stopped for %q", status, body, cause)
	}
	if after := len(g.up.Calls()); after != before {
		t.Errorf("%d calls reached the upstream after the fault", after-before)
	}
}

// stop closes the server (whose stop cannot be recorded) and checks that
// it logged why it stopped, once, at Error level.
func (g *faultRig) stop(t *testing.T, cause string) {
	t.Helper()
	g.s.App.Close(context.Background())
	var lines []string
	for _, l := range strings.Split(g.s.Log.String(), "\n") {
		if strings.Contains(l, "the audit log has stopped") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], cause) {
		t.Errorf("want one error line naming %q; got %q", cause, lines)
	}
}

// The database's files deleted or replaced under a running server: it
// notices within a watch interval (1 s) with no traffic, within 10 ms
// under load, and fails closed.
func TestStorageFilesMovedWhileServing(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, cause string
		wait        bool // let the watch find it, with no request
		move        func(t *testing.T, dir string)
		restart     string // what a restart says; "" if it recovers
	}{
		{"database deleted, found by the watch", "ostiary.db deleted", true,
			func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "ostiary.db"))) }, "missing ostiary.db"},
		{"database deleted, found by the calls", "ostiary.db deleted", false,
			func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "ostiary.db"))) }, "missing ostiary.db"},
		{"wal deleted", "ostiary.db-wal deleted", false,
			func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "ostiary.db-wal"))) }, ""},
		{"database replaced by another installation's", "ostiary.db deleted or replaced", true, func(t *testing.T, dir string) {
			other := t.TempDir()
			if _, err := app.Init(context.Background(), other, time.Now); err != nil {
				t.Fatal(err)
			}
			must(t, os.Rename(filepath.Join(other, "ostiary.db"), filepath.Join(dir, "ostiary.db")))
		}, "does not match the audit log"},
		{"audit log segment deleted, found by the calls", "audit log file deleted", false, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "audit", "00000000000000000001.wal")))
		}, "the log was deleted"},
		{"audit log segment replaced by a copy, found by the watch", "audit log file deleted", true, func(t *testing.T, dir string) {
			seg := filepath.Join(dir, "audit", "00000000000000000001.wal")
			b, err := os.ReadFile(seg)
			must(t, err)
			must(t, os.WriteFile(seg+".copy", b, 0o600))
			must(t, os.Rename(seg+".copy", seg))
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newFaultRig(t, apptest.Start(t))
			mustStatus(t, g.call(), http.StatusOK)
			c.move(t, g.s.Dir)
			if c.wait {
				testutil.Eventually(t, 10*time.Second, func() bool { return g.s.App.AuditStopped() != nil }, "the server did not notice")
			} else {
				// Calls keep coming: one of the next few is refused (a batch
				// looks at the files at most every 10 ms, so under load a
				// call or two may still be acknowledged, into a file gone).
				acked := 0
				testutil.Eventually(t, 10*time.Second, func() bool {
					r := g.call()
					if r.Status == http.StatusOK {
						acked++
					}
					return r.Status == http.StatusServiceUnavailable
				}, "calls kept succeeding")
				t.Logf("%d calls acknowledged between the fault and the first refusal", acked)
			}
			g.closedFor(t, c.cause)
			g.stop(t, c.cause)
			err := g.s.TryRestart(nil)
			t.Logf("restart: %v", err)
			switch {
			case c.restart == "" && err != nil:
				t.Fatalf("restart: %v", err)
			case c.restart == "":
				mustStatus(t, g.call(), http.StatusOK)
				g.s.Stop()
				if _, err := app.VerifyAudit(context.Background(), g.s.Dir, "", true, nil, ""); err != nil {
					t.Errorf("verify after the restart: %v", err)
				}
			case err == nil || !strings.Contains(err.Error(), c.restart):
				t.Errorf("restart on the damaged directory: %v, want it refused (%q)", err, c.restart)
			}
		})
	}
}

// A store locked by another process (here the test, holding BEGIN
// EXCLUSIVE on the same file) holds nothing without bound. Tool calls go
// on: their records are durable in the audit log, and the index catches
// up once the lock is gone. An admin change needs the database: it is
// answered 503 within the store timeout, and /readyz says the store is
// busy. It is not a storage failure: once the lock is released the server
// is ready again, and every record is in the index.
func TestStoreLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	g := newFaultRig(t, apptest.StartWith(t, func(c *config.Config) { c.StoreTimeout = timeout }))
	mustStatus(t, g.call(), http.StatusOK)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(g.s.Dir, "ostiary.db")+"?_pragma=busy_timeout(10000)")
	must(t, err)
	defer db.Close()
	conn, err := db.Conn(context.Background())
	must(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE")
	must(t, err)

	var ids []string
	answers := make(chan apptest.Response, 16)
	for range 16 {
		go func() { answers <- g.call() }()
	}
	for range 16 {
		select {
		case r := <-answers:
			if r.Status != http.StatusOK {
				t.Errorf("one of 16 calls on a locked store: %d %s", r.Status, r.Body)
			}
			ids = append(ids, r.Header.Get("X-Request-ID"))
		case <-time.After(30 * time.Second):
			t.Fatal("calls on a locked store got no answer")
		}
	}
	asked := time.Now()
	if r := g.s.Do("POST", "/api/v1/users", g.s.AdminKey, map[string]any{"name": "mallory"}); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("an admin change on a locked store: %d %s", r.Status, r.Body)
	}
	t.Logf("an admin change on the locked store answered after %v (store timeout %v)", time.Since(asked).Round(time.Millisecond), timeout)
	testutil.Eventually(t, 10*time.Second, func() bool {
		status, body := readyz(t, g.s)
		return status == http.StatusServiceUnavailable && body["component"] == "audit-log" && body["state"] == "failing"
	}, "readyz did not report the locked store")

	_, err = conn.ExecContext(context.Background(), "ROLLBACK")
	must(t, err)
	testutil.Eventually(t, 10*time.Second, func() bool { st, _ := readyz(t, g.s); return st == http.StatusOK }, "not ready again after the lock was released")
	mustStatus(t, g.call(), http.StatusOK)
	if g.s.App.AuditStopped() != nil {
		t.Errorf("a lock stopped the audit log: %v", g.s.App.AuditStopped())
	}
	for _, id := range ids {
		events := map[string]bool{}
		for _, r := range records(t, g.s, audit.Query{RequestID: id}) {
			events[r.Event] = true
		}
		if !events["tool-call"] || !events["tool-result"] {
			t.Errorf("call %s made while the store was locked lacks its records in the index: %v", id, events)
		}
	}
	g.s.Stop()
	if _, err := app.VerifyAudit(context.Background(), g.s.Dir, "", true, nil, ""); err != nil {
		t.Error(err)
	}
}

// A real full disk: the data directory on a small tmpfs (where root may
// mount one), filled up under a running server. The call that finds no
// space is refused, and everything after it, also once space is free
// again (no retry on the same files); a restart recovers, and every
// acknowledged call has its decision and outcome on record.
func TestDiskFullWhileServing(t *testing.T) {
	t.Parallel()
	mnt := filepath.Join(t.TempDir(), "small")
	must(t, os.Mkdir(mnt, 0o700))
	// Room for the audit log's 16 MiB segment and the next one it prepares.
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) }) // after the server has stopped: cleanups run last first
	g := newFaultRig(t, apptest.StartIn(t, filepath.Join(mnt, "data"), nil))
	mustStatus(t, g.call(), http.StatusOK)
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	st, err := os.Stat(filler)
	must(t, err)
	must(t, os.Truncate(filler, st.Size()-512<<10)) // room for a few calls more

	var acked []string // request ids of calls answered 200
	var last apptest.Response
	for range 2000 {
		if last = g.call(); last.Status != http.StatusOK {
			break
		}
		acked = append(acked, last.Header.Get("X-Request-ID"))
	}
	if last.Status != http.StatusServiceUnavailable || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after %d calls on a full disk: %d %s", len(acked), last.Status, last.Body)
	}
	// The failing call reached the upstream only if its decision was on
	// record, and then it says so.
	reached := 1 + len(acked) // the first call, before the disk filled
	if strings.Contains(string(last.Body), "sent to the upstream") {
		reached++
	}
	if n := len(g.up.Calls()); n != reached {
		t.Errorf("the upstream got %d calls; %d were acknowledged or admitted", n, reached)
	}
	g.closedFor(t, "disk full")
	must(t, os.Remove(filler))
	g.closedFor(t, "disk full")
	g.stop(t, "disk full")

	g.s.Restart(nil)
	mustStatus(t, g.call(), http.StatusOK)
	g.s.Stop()
	if _, err := app.VerifyAudit(context.Background(), g.s.Dir, "", true, nil, ""); err != nil {
		t.Fatalf("verify after the restart: %v", err)
	}
	for _, id := range acked {
		recs := records(t, g.s, audit.Query{RequestID: id})
		events := map[string]bool{}
		for _, r := range recs {
			events[r.Event] = true
		}
		if !events["tool-call"] || !events["tool-result"] {
			t.Errorf("acknowledged call %s lacks its records: %v", id, events)
		}
	}
	t.Logf("disk full after %d acknowledged calls; the failing call %s", len(acked), last.Body)
}

// A database damaged while the server was down is refused at start, with
// a plain message, rather than served from.
func TestCorruptDatabaseRefusesStart(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	for range 400 { // audited reads: enough records for many pages
		mustStatus(t, s.Do("GET", "/api/v1/users", s.AdminKey, nil), http.StatusOK)
	}
	s.Stop()
	path := filepath.Join(s.Dir, "ostiary.db")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	st, err := f.Stat()
	must(t, err)
	const page = 4096
	for p := st.Size() / page / 2; p < st.Size()/page; p += 3 {
		_, err := f.WriteAt([]byte(strings.Repeat("\xff", 64)), p*page)
		must(t, err)
	}
	must(t, f.Close())
	err = s.TryRestart(nil)
	if err == nil || !strings.Contains(err.Error(), "is corrupt") || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("starting on a corrupt database: %v", err)
	}
}

func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
