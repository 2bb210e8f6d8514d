package recovery

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/store/sqlite"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
)

// BenchmarkRecover is what recovery adds to a start over a log of 1M
// records (500k answered calls): after a clean stop, after a crash that
// ended a short run (1,000 calls since its start, 16 under way), and
// after a crash that ended a run of the whole log (the worst case). Run
// it with: go test -run - -bench Recover ./internal/recovery
func BenchmarkRecover(b *testing.B) {
	const calls = 500_000
	for _, c := range []struct {
		name string
		run  int // calls of the last run: the rest come before its start
		stop bool
	}{
		{"clean stop", calls, true},
		{"crash after a short run", 1000, false},
		{"crash after a run of the whole log", calls, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			st := sqlitetest.Open(b)
			seedCalls(b, st, calls, c.run, c.stop)
			_, priv, _ := ed25519.GenerateKey(nil)
			// The calls were seeded in the database alone, as before the log:
			// the writer copies them into a new log once.
			w, err := audit.NewWriter(ctx, audit.WriterConfig{Log: sqlitetest.OpenLog(b, filepath.Join(b.TempDir(), "audit")), Store: st, Signer: priv,
				CheckpointPath: filepath.Join(b.TempDir(), "cp"), CheckpointEvery: time.Hour, FromDatabase: true})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			for b.Loop() {
				if _, err := Recover(ctx, st, w, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// seedCalls appends n calls (a decision and its outcome each), the last
// run of them after a server-start; with stop, a clean server-stop ends
// the log, else the last 16 calls have no outcome.
func seedCalls(b *testing.B, st *sqlite.Store, n, run int, stop bool) {
	var seq uint64
	var prev [32]byte
	t0 := time.Now()
	next := func(tx audit.Tx, r audit.Record) {
		seq++
		r.Seq, r.Prev, r.Time = seq, prev, t0
		h, err := r.ComputeHash()
		if err != nil {
			b.Fatal(err)
		}
		r.Hash, prev = h, h
		if err := tx.AppendRecord(ctx, &r); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 5000
	for i := 0; i < n; i += batch {
		if err := st.AuditBatch(ctx, func(tx audit.Tx) error {
			for j := i; j < min(i+batch, n); j++ {
				if j == n-run {
					next(tx, audit.Record{Event: audit.EventServerStart, Outcome: audit.Success, Actor: "system"})
				}
				rid := fmt.Sprintf("req-%d", j)
				d := rec(0, govern.EventToolCall, audit.Success, rid, "tool:crm.lookup", map[string]any{"decision": "allow", "args_sha256": "x"})
				next(tx, d)
				if stop || j < n-16 {
					next(tx, rec(0, govern.EventToolResult, audit.Success, rid, "tool:crm.lookup", map[string]any{"decision_seq": seq, "latency_us": 100}))
				}
			}
			if stop && i+batch >= n {
				next(tx, audit.Record{Event: audit.EventServerStop, Outcome: audit.Success, Actor: "system", Detail: map[string]any{OpenAtStop: 0}})
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
