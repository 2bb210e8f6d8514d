package sqlite_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/store/sqlite"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
)

var bg = context.Background()

// storageCause is the cause of err's *audit.StorageError, or "".
func storageCause(err error) string {
	var se *audit.StorageError
	if errors.As(err, &se) {
		return se.Cause
	}
	return ""
}

// appendOne stores record seq in its own transaction.
func appendOne(s *sqlite.Store, seq uint64) error {
	return s.AuditBatch(bg, func(tx audit.Tx) error {
		return tx.AppendRecord(bg, &audit.Record{Seq: seq, Time: time.Now(), Event: "test-event", Outcome: audit.Success})
	})
}

// refusesWrites checks that s writes nothing more, whatever the database
// would now accept: no transaction begins, and each write names the cause.
func refusesWrites(t *testing.T, s *sqlite.Store, cause string) {
	t.Helper()
	began := false
	err := s.AuditBatch(bg, func(audit.Tx) error { began = true; return nil })
	if began || !fault.Is(err, fault.Unavailable) || !strings.Contains(storageCause(err), cause) {
		t.Errorf("a batch after the failure: began %v, %v", began, err)
	}
	for name, err := range map[string]error{
		"checkpoint":   s.SaveCheckpoint(bg, audit.Checkpoint{Seq: 1}),
		"touch keys":   s.TouchKeys(bg, map[string]time.Time{"k": time.Now()}),
		"touch secret": s.TouchSecret(bg, "api", "default", 1, time.Now()),
		"fault":        s.StorageFault(),
		"ping":         s.Ping(bg),
	} {
		if !strings.Contains(storageCause(err), cause) {
			t.Errorf("%s after the failure: %v", name, err)
		}
	}
}

// A write the storage refuses (here SQLite's own read-only refusal, as a
// remounted disk gives) fences the store: nothing more is written through
// it even once the database would take writes again. A new store on the
// same file (a restart) carries on.
func TestStorageFailureFencesStore(t *testing.T) {
	s := sqlitetest.Open(t)
	if err := appendOne(s, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetQueryOnlyForTest(true); err != nil {
		t.Fatal(err)
	}
	if err := appendOne(s, 2); storageCause(err) != "database read-only" || !fault.Is(err, fault.Unavailable) {
		t.Fatalf("a write to a read-only database: %v", err)
	}
	if err := s.SetQueryOnlyForTest(false); err != nil {
		t.Fatal(err)
	}
	refusesWrites(t, s, "database read-only")
	s.Close()
	again, err := sqlite.Open(bg, s.Path(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := appendOne(again, 2); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

// A store locked by another process answers within its timeout, as
// unavailable and not as a storage failure: reads go on (WAL), and writes
// resume once the lock is released.
func TestLockedStoreAnswersWithinTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ostiary.db")
	s, err := sqlite.Open(bg, path, sqlite.Options{Create: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := appendOne(s, 1); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(bg, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func() error{
		"batch":      func() error { return appendOne(s, 2) },
		"touch keys": func() error { return s.TouchKeys(bg, map[string]time.Time{"k": time.Now()}) },
		"checkpoint": func() error { return s.SaveCheckpoint(bg, audit.Checkpoint{Seq: 1}) },
	} {
		done := make(chan error, 1)
		go func() { done <- write() }()
		select {
		case err := <-done:
			if !fault.Is(err, fault.Unavailable) || storageCause(err) != "" {
				t.Errorf("%s on a locked store: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s on a locked store did not return", name)
		}
	}
	if err := s.Ping(bg); err != nil {
		t.Errorf("a read while another process holds the write lock: %v", err)
	}
	if _, err := conn.ExecContext(bg, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := appendOne(s, 2); err != nil {
		t.Errorf("after the lock is released: %v", err)
	}
}

// The deadline bounds a batch's waits, not its work: a batch that began in
// time commits, however long its work takes (rolling it back halfway,
// as database/sql does when a transaction's context ends, would fail
// every long change for ever).
func TestBatchDeadlineBoundsOnlyTheWait(t *testing.T) {
	s := sqlitetest.Open(t)
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	err := s.AuditBatch(ctx, func(tx audit.Tx) error {
		<-ctx.Done() // the work outlasts the deadline
		return tx.AppendRecord(bg, &audit.Record{Seq: 1, Time: time.Now(), Event: "test-event", Outcome: audit.Success})
	})
	if err != nil {
		t.Fatalf("a batch whose work outlasted its deadline: %v", err)
	}
	if seq, _, err := s.AuditHead(bg); err != nil || seq != 1 {
		t.Errorf("head %d, %v", seq, err)
	}
}

// The database's files deleted, renamed or replaced under a running store
// are noticed (device and inode), and the store then writes nothing more.
func TestStorageFaultDetectsMovedFiles(t *testing.T) {
	for _, c := range []struct {
		name, cause string
		dbMoved     bool
		move        func(t *testing.T, path string)
	}{
		{"database deleted", "ostiary.db deleted", true, func(t *testing.T, path string) { must(t, os.Remove(path)) }},
		{"database renamed", "ostiary.db deleted or renamed", true, func(t *testing.T, path string) { must(t, os.Rename(path, path+".old")) }},
		{"wal deleted", "ostiary.db-wal deleted", false, func(t *testing.T, path string) { must(t, os.Remove(path+"-wal")) }},
		{"shm deleted", "ostiary.db-shm deleted", false, func(t *testing.T, path string) { must(t, os.Remove(path+"-shm")) }},
		{"database replaced by another", "ostiary.db deleted or replaced", true, func(t *testing.T, path string) {
			other := filepath.Join(filepath.Dir(path), "other.db")
			o, err := sqlite.Open(bg, other, sqlite.Options{Create: true})
			must(t, err)
			must(t, o.Close())
			must(t, os.Rename(other, path))
		}},
		{"database replaced by a copy of itself", "ostiary.db deleted or replaced", true, func(t *testing.T, path string) {
			tmp := path + ".copy"
			must(t, copyFile(path, tmp))
			must(t, os.Rename(tmp, path))
		}},
		{"database replaced, the old one kept under another name", "ostiary.db replaced", true, func(t *testing.T, path string) {
			must(t, os.Rename(path, path+".old"))
			must(t, copyFile(path+".old", path))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := sqlitetest.Open(t)
			for i := range 50 {
				must(t, appendOne(s, uint64(i+1)))
			}
			if err := s.StorageFault(); err != nil {
				t.Fatalf("before: %v", err)
			}
			c.move(t, s.Path())
			// A file that lost its last name is seen at once; a renamed
			// or replaced one (its inode still named elsewhere) at the
			// next check of the paths.
			var err error
			testutil.Eventually(t, 5*time.Second, func() bool { err = s.StorageFault(); return err != nil }, "the move went unnoticed")
			if !strings.Contains(storageCause(err), c.cause) {
				t.Fatalf("after: %v, want cause %q", err, c.cause)
			}
			refusesWrites(t, s, c.cause)
			// Once the database file itself is gone, its write-ahead log
			// is set aside, never to be replayed onto another file.
			aside, _ := filepath.Glob(s.Path() + "-wal.orphaned-*")
			if c.dbMoved != (len(aside) == 1) || c.dbMoved != strings.Contains(err.Error(), "orphaned") {
				t.Errorf("the write-ahead log set aside: %v (%v)", aside, err)
			}
		})
	}
}

// The store's own life never looks like a moved file: batches, reads from
// a pool that grows and shrinks, checkpoints of the WAL.
func TestStorageFaultQuietWhileHealthy(t *testing.T) {
	s := sqlitetest.Open(t)
	for i := range 300 {
		must(t, appendOne(s, uint64(i+1)))
		if i%50 == 0 {
			done := make(chan error, 8)
			for range 8 {
				go func() { done <- s.ScanRecords(bg, func(*audit.Record) error { return nil }) }()
			}
			for range 8 {
				must(t, <-done)
			}
		}
	}
	if err := s.StorageFault(); err != nil {
		t.Errorf("a healthy store: %v", err)
	}
}

// A damaged database is refused at open with a plain message, before
// anything is served from it; reading it for an audit stays possible.
func TestOpenRefusesCorruptDatabase(t *testing.T) {
	e := sqlitetest.New(t, time.Now)
	for i := range 3000 {
		if _, err := e.Writer.Write(bg, audit.Entry{Record: audit.Record{Event: "test-event", Outcome: audit.Success,
			Detail: map[string]any{"i": i, "pad": strings.Repeat("x", 200)}}}); err != nil {
			t.Fatal(err)
		}
	}
	e.Writer.Close()
	path := e.Store.Path()
	e.Store.Close() // folds the WAL into the database file
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	st, err := f.Stat()
	must(t, err)
	const page = 4096
	pages := st.Size() / page
	garbage := []byte(strings.Repeat("\xff", 64))
	for p := pages / 2; p < pages; p += 3 {
		_, err := f.WriteAt(garbage, p*page)
		must(t, err)
	}
	must(t, f.Close())
	_, err = sqlite.Open(bg, path, sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "is corrupt") || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("opening a damaged database: %v", err)
	}
	ro, err := sqlite.Open(bg, path, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening a damaged database to audit it: %v", err)
	}
	ro.Close()
}

// Last-use times of many keys go in bounded transactions, all of them; on
// a locked store the flush gives up in its own time, without fencing.
func TestTouchKeysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ostiary.db")
	s, err := sqlite.Open(bg, path, sqlite.Options{Create: true, Timeout: 200 * time.Millisecond})
	must(t, err)
	defer s.Close()
	const n = 600
	used := map[string]time.Time{}
	at := time.Now().UTC().Truncate(time.Microsecond)
	must(t, s.AuditBatch(bg, func(atx audit.Tx) error {
		tx := atx.(*sqlite.Tx)
		if err := tx.InsertUser(bg, identity.User{Name: "alice", CreatedAt: at}); err != nil {
			return err
		}
		for i := range n {
			id := fmt.Sprintf("key%05d", i)
			used[id] = at.Add(time.Duration(i) * time.Second)
			if err := tx.InsertKey(bg, identity.Key{ID: id, User: "alice", Hash: []byte("h"), Environment: "default", CreatedAt: at}); err != nil {
				return err
			}
		}
		return nil
	}))
	must(t, s.TouchKeys(bg, used))
	for id, want := range used {
		k, err := s.KeyByID(bg, id)
		must(t, err)
		if !k.LastUsedAt.Equal(want) {
			t.Fatalf("%s last used %v, want %v", id, k.LastUsedAt, want)
		}
	}
	other, err := sql.Open("sqlite", "file:"+path)
	must(t, err)
	defer other.Close()
	conn, err := other.Conn(bg)
	must(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(bg, "BEGIN EXCLUSIVE")
	must(t, err)
	if err := s.TouchKeys(bg, used); !fault.Is(err, fault.Unavailable) || storageCause(err) != "" {
		t.Errorf("touching keys on a locked store: %v", err)
	}
	_, err = conn.ExecContext(bg, "ROLLBACK")
	must(t, err)
	must(t, s.TouchKeys(bg, used))
}

// A real full disk under the database: a tmpfs of 16 MiB where root may
// mount one (the audit log is elsewhere; its own full disk is
// audit/wal's TestRealENOSPC). Changes write the database with their
// records: the change that finds no space fails as "disk full" and fences
// the store and stops the writer; freeing space changes nothing (no retry
// on the same files); after a restart every acknowledged record is in the
// log, every acknowledged change in the database, and the chain verifies.
func TestRealDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	must(t, os.Mkdir(dir, 0o700))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	path, cpPath := filepath.Join(dir, "ostiary.db"), filepath.Join(t.TempDir(), "audit.checkpoint")
	s, err := sqlite.Open(bg, path, sqlite.Options{Create: true})
	must(t, err)
	defer func() { s.Close() }()
	pub, priv, _ := ed25519.GenerateKey(nil)
	logDir := filepath.Join(t.TempDir(), "audit")
	log := sqlitetest.OpenLog(t, logDir)
	w, err := audit.NewWriter(bg, audit.WriterConfig{Log: log, Store: s, Signer: priv, CheckpointPath: cpPath, CheckpointEvery: time.Hour})
	must(t, err)
	defer func() { w.Close() }()
	change := func(ctx context.Context, tx audit.Tx, r *audit.Record) error { return nil } // its record's index row is the change
	var acked uint64
	var werr error
	for i := range 5000 {
		if i == 100 { // acknowledged records before the disk fills, and as many after as fit
			fill(t, filepath.Join(dir, "filler"))
		}
		var rec audit.Record
		if rec, werr = w.Write(bg, audit.Entry{Record: audit.Record{Event: "test-event", Outcome: audit.Success,
			Detail: map[string]any{"pad": strings.Repeat("x", 500)}}, Apply: change}); werr != nil {
			break
		}
		acked = rec.Seq
	}
	if storageCause(werr) != "disk full" || w.Stopped() == nil || acked < 100 {
		t.Fatalf("after %d records on a full disk: %v (stopped %v)", acked, werr, w.Stopped())
	}
	must(t, os.Remove(filepath.Join(dir, "filler")))
	if _, err := w.Write(bg, audit.Entry{Record: audit.Record{Event: "test-event"}}); storageCause(err) != "disk full" {
		t.Errorf("a write once space is free again: %v", err)
	}
	refusesWrites(t, s, "disk full")
	w.Close()
	log.Close()
	s.Close()

	s, err = sqlite.Open(bg, path, sqlite.Options{})
	must(t, err)
	log = sqlitetest.OpenLog(t, logDir)
	w, err = audit.NewWriter(bg, audit.WriterConfig{Log: log, Store: s, Signer: priv, CheckpointPath: cpPath, CheckpointEvery: time.Hour})
	must(t, err)
	seq := log.Last()
	if seq < acked {
		t.Fatalf("acknowledged records lost: the log ends at %d, %d were acknowledged", seq, acked)
	}
	for i := uint64(1); i <= acked; i++ {
		if ok, err := s.AuditIndexed(bg, i); err != nil || !ok {
			t.Fatalf("acknowledged change %d not in the database after the restart: %v", i, err)
		}
	}
	if _, err := w.Write(bg, audit.Entry{Record: audit.Record{Event: "test-event", Outcome: audit.Success}}); err != nil {
		t.Fatalf("a write after the restart: %v", err)
	}
	w.Close()
	cp, err := audit.ReadCheckpointFile(cpPath)
	must(t, err)
	cps, err := s.Checkpoints(bg)
	must(t, err)
	if sum, err := audit.VerifyLog(bg, logDir, pub, cp, cps); err != nil || sum.Records < acked {
		t.Fatalf("verify the log after the restart: %+v %v", sum, err)
	}
	if sum, err := audit.Verify(bg, s, pub, cp); err != nil || sum.Records < acked {
		t.Fatalf("verify the index after the restart: %+v %v", sum, err)
	}
	t.Logf("disk full after %d acknowledged records; %d on disk after the restart", acked, seq)
}

// fill writes zeros to path until the file system has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
