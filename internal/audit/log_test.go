package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/store/sqlite"
)

// crashBeforeCommit is the store of a server that dies after a change's
// record reached the log and before the change's transaction committed:
// every change batch runs and is then rolled back.
type crashBeforeCommit struct{ *sqlite.Store }

var errCrash = errors.New("the process died before the commit")

func (s crashBeforeCommit) AuditBatch(ctx context.Context, fn func(audit.Tx) error) error {
	return s.Store.AuditBatch(ctx, func(tx audit.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errCrash
	})
}

// createUser writes the record of creating user name, with the change.
func createUser(w *audit.Writer, name string) (audit.Record, error) {
	return w.Write(context.Background(), audit.Entry{
		Record: audit.Record{Event: "user-create", Outcome: audit.Success, Actor: "admin", Target: "user:" + name},
		Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			return tx.(*sqlite.Tx).InsertUser(ctx, identity.User{Name: name, CreatedAt: time.Now(), CreatedBy: "admin"})
		}})
}

func records(t *testing.T, c *chain) []audit.Record {
	t.Helper()
	c.w.Settle(context.Background(), 10*time.Second)
	var out []audit.Record
	if err := c.store.ScanRecords(context.Background(), func(r *audit.Record) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// A change whose record reached the log but whose transaction never
// committed (a crash in between) did not happen: the next start records
// that it was not applied, citing it, exactly once; the change is not in
// effect; the chain verifies; and the record of a change that did commit
// is never cited.
func TestChangeLoggedButNotApplied(t *testing.T) {
	c := newChain(t)
	if _, err := createUser(c.w, "alice"); err != nil {
		t.Fatal(err)
	}
	c.w.Close()
	crashing, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: crashBeforeCommit{c.store}, Signer: c.priv,
		CheckpointPath: c.cpPath, CheckpointEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c.w = crashing
	_, err = createUser(c.w, "bob")
	if !fault.Is(err, fault.Unavailable) || c.w.Stopped() == nil {
		t.Fatalf("a change whose commit did not happen: %v (stopped %v)", err, c.w.Stopped())
	}
	logged := c.log.Last()
	if err := c.restart(t, true); err != nil {
		t.Fatal(err)
	}
	recs := records(t, c)
	var cites []audit.Record
	for _, r := range recs {
		if r.Event == audit.EventChangeNotApplied {
			cites = append(cites, r)
		}
	}
	if len(cites) != 1 || fmt.Sprint(cites[0].Detail["record_seq"]) != fmt.Sprint(logged) || cites[0].Target != "user:bob" ||
		cites[0].Outcome != audit.Failed {
		t.Fatalf("change-not-applied records %+v; want one citing record %d", cites, logged)
	}
	if _, err := c.store.UserByName(context.Background(), "bob"); !fault.Is(err, fault.NotFound) {
		t.Errorf("the change that was not applied is in effect: %v", err)
	}
	if _, err := c.store.UserByName(context.Background(), "alice"); err != nil {
		t.Errorf("the applied change: %v", err)
	}
	// Idempotent: another start cites nothing more.
	if err := c.restart(t, true); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range records(t, c) {
		if r.Event == audit.EventChangeNotApplied {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d change-not-applied records after a second start", n)
	}
	if _, err := c.verify(t); err != nil {
		t.Fatal(err)
	}
}

// The index is filled behind the log: a query right after a write finds
// it once the index settles; an index that could not keep up (here every
// index transaction fails as a locked store's would) is caught up from the
// log at the next start.
func TestIndexCatchesUpFromTheLog(t *testing.T) {
	c := newChain(t)
	c.write(t, 5)
	c.w.Close()
	w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: lockedIndex{c.store}, Signer: c.priv,
		CheckpointPath: c.cpPath, CheckpointEvery: time.Hour, StoreTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.w = w
	c.write(t, 20)
	if lag := c.w.Settle(context.Background(), 200*time.Millisecond); lag != 20 {
		t.Fatalf("lag %d with a locked index, want 20", lag)
	}
	// Reported, but the log goes on: records are durable without the index.
	if c.w.Health() == nil || c.w.Stopped() != nil {
		t.Fatalf("a locked index: health %v, stopped %v; want trouble reported, the log not stopped", c.w.Health(), c.w.Stopped())
	}
	if err := c.restart(t, true); err != nil {
		t.Fatal(err)
	}
	if n := len(records(t, c)); n != 25 {
		t.Fatalf("%d records indexed after the restart, want 25", n)
	}
	if _, err := c.verify(t); err != nil {
		t.Fatal(err)
	}
}

type lockedIndex struct{ *sqlite.Store }

func (lockedIndex) IndexRecords(context.Context, []*audit.Record, uint64) error {
	return fault.Wrap(fault.Unavailable, "begin", errors.New("database is locked (5)"))
}

// A database from before the log is copied into it at the first start,
// and verifies there; one whose chain was altered is not carried over.
func TestMigratesTheDatabaseChain(t *testing.T) {
	c := newChain(t)
	c.write(t, 30)
	c.w.Close()
	c.log.Close()
	if err := os.RemoveAll(c.logDir); err != nil { // as a database from before the log has none
		t.Fatal(err)
	}
	c.openLog(t)
	c.log.Close()
	if err := c.restart(t, true); err == nil || !strings.Contains(err.Error(), "the log was deleted") {
		t.Fatalf("an empty log beside a database with records, not from before the log: %v", err)
	}
	c.fromDB = true
	if err := c.restart(t, true); err != nil {
		t.Fatalf("first start with the log: %v", err)
	}
	c.write(t, 3)
	sum, err := c.verify(t)
	if err != nil || sum.Records != 33 {
		t.Fatalf("verify after the copy: %+v %v", sum, err)
	}

	c.log.Close()
	os.RemoveAll(c.logDir)
	c.tamper(t, "UPDATE audit_records SET actor = 'mallory' WHERE seq = 7")
	c.openLog(t)
	c.store.Close()
	st, err := sqlite.Open(context.Background(), c.dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.store = st
	_, err = audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: c.store, Signer: c.priv, CheckpointPath: c.cpPath, FromDatabase: true})
	if err == nil || !strings.Contains(err.Error(), "record 7") {
		t.Fatalf("copying an altered chain: %v", err)
	}
	if c.log.Last() > 6 {
		t.Errorf("the log took %d records of an altered chain", c.log.Last())
	}
}

// What VerifyLog finds in a log altered on disk: a flipped byte fails its
// frame's checksum; a record rewritten with a valid frame (an attacker who
// knows the format) breaks the next record's link; a log cut short and
// rebuilt consistently falls short of the signed checkpoint.
func TestVerifyLogDetectsTampering(t *testing.T) {
	seg := func(c *chain) string {
		m, _ := filepath.Glob(filepath.Join(c.logDir, "*.wal"))
		slices.Sort(m)
		return m[0]
	}
	rebuild := func(t *testing.T, c *chain, edit func(i uint64, p []byte) []byte) {
		t.Helper()
		var payloads [][]byte
		if _, err := wal.ScanDir(c.logDir, nil, func(i uint64, p []byte) error {
			if q := edit(i, slices.Clone(p)); q != nil {
				payloads = append(payloads, q)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(c.logDir)
		l, err := wal.Open(c.logDir, wal.Options{SegmentSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range payloads {
			if err := l.AppendBatch([][]byte{p}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}
	cases := []struct {
		name    string
		tamper  func(t *testing.T, c *chain)
		wantSeq uint64
		want    string
	}{
		{"flipped byte", func(t *testing.T, c *chain) {
			b, err := os.ReadFile(seg(c))
			if err != nil {
				t.Fatal(err)
			}
			i := strings.Index(string(b), `"user1"`)
			b[i+2] ^= 1
			if err := os.WriteFile(seg(c), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0, "checksum"},
		{"rewritten record", func(t *testing.T, c *chain) {
			rebuild(t, c, func(i uint64, p []byte) []byte {
				if i == 17 {
					return []byte(strings.Replace(string(p), `"actor":"user`, `"actor":"mallo`, 1))
				}
				return p
			})
		}, 18, "link"},
		{"cut and rebuilt", func(t *testing.T, c *chain) {
			rebuild(t, c, func(i uint64, p []byte) []byte {
				if i > 40 {
					return nil
				}
				return p
			})
		}, 41, "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newChain(t)
			c.write(t, 50)
			c.w.Close()
			c.log.Close()
			tc.tamper(t, c)
			cp, err := audit.ReadCheckpointFile(c.cpPath)
			if err != nil {
				t.Fatal(err)
			}
			_, err = audit.VerifyLog(context.Background(), c.logDir, c.pub, cp, nil)
			if !audit.IsChainError(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyLog = %v, want a chain error about %q", err, tc.want)
			}
			var ce *audit.ChainError
			if tc.wantSeq != 0 && (!errors.As(err, &ce) || ce.Seq != tc.wantSeq) {
				t.Errorf("VerifyLog = %v, want record %d named", err, tc.wantSeq)
			}
			c.log = nil
		})
	}
}
