package audit_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store/sqlite"
)

type chain struct {
	dir, dbPath, cpPath string
	logDir              string
	store               *sqlite.Store
	log                 *wal.Log
	fromDB              bool // restarts may copy a database from before the log
	priv                ed25519.PrivateKey
	pub                 ed25519.PublicKey
	w                   *audit.Writer
}

func newChain(t testing.TB) *chain {
	t.Helper()
	dir := t.TempDir()
	c := &chain{dir: dir, dbPath: filepath.Join(dir, "ostiary.db"), cpPath: filepath.Join(dir, "audit.checkpoint"), logDir: filepath.Join(dir, "audit")}
	var err error
	if c.store, err = sqlite.Open(context.Background(), c.dbPath, sqlite.Options{Create: true}); err != nil {
		t.Fatal(err)
	}
	c.openLog(t)
	c.pub, c.priv, _ = ed25519.GenerateKey(nil)
	c.openWriter(t, false)
	t.Cleanup(func() {
		c.w.Close()
		if c.log != nil {
			c.log.Close()
		}
		c.store.Close()
	})
	return c
}

func (c *chain) openLog(t testing.TB) {
	t.Helper()
	var err error
	if c.log, err = wal.Open(c.logDir, wal.Options{SegmentSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
}

// restart closes the writer, the log and the store and opens them again,
// as a server restart does.
func (c *chain) restart(t testing.TB, requireCheckpoint bool) error {
	t.Helper()
	c.w.Close()
	c.log.Close()
	c.store.Close()
	var err error
	if c.store, err = sqlite.Open(context.Background(), c.dbPath, sqlite.Options{}); err != nil {
		return err
	}
	c.openLog(t)
	w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: c.store, Signer: c.priv,
		CheckpointPath: c.cpPath, CheckpointEvery: time.Hour, RequireCheckpoint: requireCheckpoint, FromDatabase: c.fromDB})
	if err == nil {
		c.w = w
	}
	return err
}

func (c *chain) openWriter(t testing.TB, requireCheckpoint bool) {
	t.Helper()
	w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: c.store, Signer: c.priv,
		CheckpointPath: c.cpPath, CheckpointEvery: time.Hour, RequireCheckpoint: requireCheckpoint})
	if err != nil {
		t.Fatal(err)
	}
	c.w = w
}

func (c *chain) write(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		rec := audit.Record{Event: "test-event", Outcome: audit.Success, Actor: fmt.Sprintf("user%d", i%3),
			Detail: map[string]any{"i": i}}
		if _, err := c.w.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
			t.Fatal(err)
		}
	}
}

// verify closes the writer (writing the final checkpoint, letting the
// index catch up) and verifies the log, then the index.
func (c *chain) verify(t testing.TB) (audit.Summary, error) {
	t.Helper()
	c.w.Close()
	cp, err := audit.ReadCheckpointFile(c.cpPath)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := c.store.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum, err := audit.VerifyLog(context.Background(), c.logDir, c.pub, cp, cps)
	if err != nil {
		return sum, fmt.Errorf("log: %w", err)
	}
	isum, err := audit.Verify(context.Background(), c.store, c.pub, cp)
	if err != nil {
		return isum, fmt.Errorf("index: %w", err)
	}
	if isum.Head != sum.Head || isum.Records != sum.Records {
		return isum, fmt.Errorf("the index (%d records) differs from the log (%d)", isum.Records, sum.Records)
	}
	return sum, nil
}

// tamper edits the database file through a separate connection, as an
// attacker with file access would.
func (c *chain) tamper(t testing.TB, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+c.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestChainVerifies(t *testing.T) {
	c := newChain(t)
	c.write(t, 50)
	sum, err := c.verify(t)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 50 || sum.LatestCheckpoint != 50 || sum.Unattested != 0 {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(sum.String(), "50 records") {
		t.Errorf("summary text %q", sum)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name    string
		stmts   []string
		wantSeq uint64
		want    string
	}{
		{"modified actor", []string{"UPDATE audit_records SET actor = 'mallory' WHERE seq = 17"}, 17, "modified"},
		{"modified detail", []string{`UPDATE audit_records SET detail = '{"i":999}' WHERE seq = 30`}, 30, "modified"},
		{"modified time", []string{"UPDATE audit_records SET time = time + 1 WHERE seq = 5"}, 5, "modified"},
		{"modified outcome", []string{"UPDATE audit_records SET outcome = 'denied' WHERE seq = 1"}, 1, "modified"},
		{"deleted middle", []string{"DELETE FROM audit_records WHERE seq = 20"}, 20, "missing"},
		{"deleted first", []string{"DELETE FROM audit_records WHERE seq = 1"}, 1, "missing"},
		{"reordered", []string{
			"UPDATE audit_records SET seq = -1 WHERE seq = 10",
			"UPDATE audit_records SET seq = 10 WHERE seq = 11",
			"UPDATE audit_records SET seq = 11 WHERE seq = -1",
		}, 10, "link"},
		{"truncated tail", []string{"DELETE FROM audit_records WHERE seq > 45"}, 46, "truncated"},
		{"truncated tail and stored checkpoints", []string{"DELETE FROM audit_records WHERE seq > 45", "DELETE FROM audit_checkpoints"}, 46, "truncated"},
		{"emptied", []string{"DELETE FROM audit_records", "DELETE FROM audit_checkpoints"}, 1, "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newChain(t)
			c.write(t, 50)
			c.w.Close()
			c.tamper(t, tc.stmts...)
			_, err := c.verify(t)
			var ce *audit.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("verify = %v, want a ChainError", err)
			}
			if ce.Seq != tc.wantSeq || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want record %d and %q", err, tc.wantSeq, tc.want)
			}
		})
	}
}

// Rewriting the whole chain consistently (recomputing every hash) is caught
// by the signed checkpoints, which the attacker cannot re-sign.
func TestVerifyDetectsRewrittenChain(t *testing.T) {
	c := newChain(t)
	c.write(t, 20)
	c.w.Close()
	// Rewrite record 20's content and hash consistently, as if re-chained.
	c.tamper(t, "UPDATE audit_records SET actor = 'mallory' WHERE seq = 20")
	var rec *audit.Record
	c.store.ScanRecords(context.Background(), func(r *audit.Record) error {
		if r.Seq == 20 {
			rec = r
		}
		return nil
	})
	h, _ := rec.ComputeHash()
	c.tamper(t, fmt.Sprintf("UPDATE audit_records SET hash = x'%x' WHERE seq = 20", h[:]))
	_, err := c.verify(t)
	if err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("verify = %v, want a checkpoint mismatch", err)
	}
}

// A writer refuses to extend a log shorter than its latest checkpoint:
// here the log is replaced by a consistent copy of its first 8 records.
func TestWriterRefusesTruncatedChain(t *testing.T) {
	c := newChain(t)
	c.write(t, 10)
	c.w.Close()
	c.log.Close()
	short := filepath.Join(c.dir, "short")
	l, err := wal.Open(short, wal.Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wal.ScanDir(c.logDir, nil, func(i uint64, p []byte) error {
		if i > 8 {
			return nil
		}
		return l.AppendBatch([][]byte{slices.Clone(p)})
	}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.RemoveAll(c.logDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(short, c.logDir); err != nil {
		t.Fatal(err)
	}
	c.openLog(t)
	_, err = audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: c.store, Signer: c.priv, CheckpointPath: c.cpPath, RequireCheckpoint: true})
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("NewWriter = %v, want a truncation error", err)
	}
}

// Concurrent writers are group-committed into one gap-free chain.
func TestWriterConcurrent(t *testing.T) {
	c := newChain(t)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				rec := audit.Record{Event: "concurrent", Outcome: audit.Success, Detail: map[string]any{"g": g, "i": i}}
				if _, err := c.w.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sum, err := c.verify(t)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 800 {
		t.Errorf("records = %d, want 800", sum.Records)
	}
}

// An action that fails is undone, and its record says so.
func TestWriterApplyFailureRecorded(t *testing.T) {
	c := newChain(t)
	boom := fault.New(fault.Conflict, "already exists")
	rec, err := c.w.Write(context.Background(), audit.Entry{
		Record: audit.Record{Event: "thing-create", Outcome: audit.Success},
		Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
			// A write that must be undone along with the failed step.
			if err := tx.AppendRecord(ctx, &audit.Record{Seq: 999, Event: "smuggled"}); err != nil {
				return err
			}
			return boom
		},
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the apply error", err)
	}
	if rec.Outcome != audit.Failed || rec.Reason != "conflict" {
		t.Errorf("record outcome %s/%s", rec.Outcome, rec.Reason)
	}
	sum, verr := c.verify(t)
	if verr != nil || sum.Records != 1 {
		t.Fatalf("verify: %+v %v (the undone write must not survive)", sum, verr)
	}
}

// If the store cannot be written, Write fails with Unavailable, the action
// does not happen, and the chain stays whole. A read-only database is a
// storage failure: the writer stops, and stays stopped when the store
// would take writes again; a restart (store and writer opened anew)
// carries on from what is on disk.
func TestWriterFailsClosedOnReadOnlyStore(t *testing.T) {
	c := newChain(t)
	c.write(t, 3)
	if err := c.store.SetQueryOnlyForTest(true); err != nil {
		t.Fatal(err)
	}
	_, err := c.w.Write(context.Background(), audit.Entry{
		Record: audit.Record{Event: "thing-create", Outcome: audit.Success},
		Apply:  func(ctx context.Context, tx audit.Tx, r *audit.Record) error { return nil },
	})
	if !fault.Is(err, fault.Unavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if err := c.store.SetQueryOnlyForTest(false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "test-event"}}); !fault.Is(err, fault.Unavailable) || c.w.Stopped() == nil {
		t.Fatalf("a write after the failure: %v (stopped %v)", err, c.w.Stopped())
	}
	if err := c.restart(t, false); err != nil {
		t.Fatal(err)
	}
	c.write(t, 2)
	sum, err := c.verify(t)
	if err != nil || sum.Records != 5 {
		t.Fatalf("verify: %+v %v", sum, err)
	}
}

// BenchmarkWriter measures durable records per second with many concurrent
// writers, the shape of the gateway's hot path.
func BenchmarkWriter(b *testing.B) {
	c := newChain(b)
	rec := audit.Record{Event: "tool-call", Outcome: audit.Success, Actor: "alice", KeyID: "abcdefghijklmnop",
		RequestID: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Remote: "127.0.0.1:51234",
		Target: "tool:finance.pay_invoice", Detail: map[string]any{"upstream": "finance", "latency_us": 1234, "args_sha256": strings.Repeat("ab", 32)}}
	b.SetParallelism(64) // 64 × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.w.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkWriterSerial is the baseline: one writer, so every record pays
// for its own durable commit.
func BenchmarkWriterSerial(b *testing.B) {
	c := newChain(b)
	rec := audit.Record{Event: "tool-call", Outcome: audit.Success, Actor: "alice"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.w.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// Scrub reaches nested detail strings before sealing, leaves the caller's
// detail untouched, and the chain still verifies.
func TestWriterScrubs(t *testing.T) {
	c := newChain(t)
	c.w.Close()
	w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: c.log, Store: c.store, Signer: c.priv, CheckpointPath: c.cpPath,
		CheckpointEvery: time.Hour, Scrub: func(s string) string { return strings.ReplaceAll(s, "hunter2", "[X]") }})
	if err != nil {
		t.Fatal(err)
	}
	c.w = w
	detail := map[string]any{"plain": "ok", "list": []string{"a", "pw=hunter2"}, "nested": map[string]any{"deep": []any{"hunter2!"}}, "n": 3}
	rec, err := w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "test-event", Outcome: audit.Failed,
		Reason: "hunter2", Target: "x:hunter2", Detail: detail}})
	if err != nil {
		t.Fatal(err)
	}
	w.Settle(context.Background(), 10*time.Second)
	stored, err := c.store.QueryAudit(context.Background(), audit.Query{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []audit.Record{rec, stored[0]} {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), "pw=[X]") || !strings.Contains(string(b), `"[X]!"`) {
			t.Errorf("scrubbed record: %s", b)
		}
	}
	if detail["list"].([]string)[1] != "pw=hunter2" {
		t.Error("the caller's detail was edited")
	}
	if _, err := c.verify(t); err != nil {
		t.Fatal(err)
	}
}
