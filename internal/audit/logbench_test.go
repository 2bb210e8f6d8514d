package audit_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/store/sqlite"
)

// bigLog writes a log of n tool-call-sized records (about 330 bytes
// each) straight to the log, and a checkpoint of its head.
func bigLog(b *testing.B, n int) (dir, cpPath string, priv ed25519.PrivateKey) {
	b.Helper()
	base := b.TempDir()
	dir, cpPath = filepath.Join(base, "audit"), filepath.Join(base, "audit.checkpoint")
	_, priv, _ = ed25519.GenerateKey(nil)
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var prev [32]byte
	batch := make([][]byte, 0, 1024)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		r := audit.Record{Seq: uint64(i), Prev: prev, Time: t0.Add(time.Duration(i) * time.Millisecond), Event: "tool-call", Outcome: audit.Success,
			Actor: "alice", KeyID: "abcdefghijklmnop", RequestID: fmt.Sprintf("%032x", i), Remote: "127.0.0.1:51234",
			Target: "tool:finance.pay_invoice", Detail: map[string]any{"upstream": "finance", "args_sha256": strings.Repeat("ab", 32)}}
		p, err := r.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		rr, err := audit.ParsePayload(p)
		if err != nil {
			b.Fatal(err)
		}
		prev = rr.Hash
		batch = append(batch, p)
		if len(batch) == cap(batch) || i == n {
			if err := l.AppendBatch(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	cp := audit.Checkpoint{Seq: uint64(n), Hash: prev, Time: t0}
	cp.Sign(priv)
	if err := audit.WriteCheckpointFile(cpPath, cp); err != nil {
		b.Fatal(err)
	}
	return dir, cpPath, priv
}

// BenchmarkVerifyLog: audit verify over a log of 1M records (target: at
// least 200,000 records/s, i.e. under 5 s).
func BenchmarkVerifyLog(b *testing.B) {
	const n = 1_000_000
	dir, cpPath, priv := bigLog(b, n)
	cp, err := audit.ReadCheckpointFile(cpPath)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		sum, err := audit.VerifyLog(context.Background(), dir, priv.Public().(ed25519.PublicKey), cp, nil)
		if err != nil || sum.Records != n {
			b.Fatalf("%+v %v", sum, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkStartWithMillionRecords: opening the log and the writer over
// 1M records whose index is up to date (target: under 300 ms).
func BenchmarkStartWithMillionRecords(b *testing.B) {
	const n = 1_000_000
	dir, cpPath, priv := bigLog(b, n)
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ostiary.db"), sqlite.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// Index it once (a first start), outside the timing.
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: l, Store: st, Signer: priv, CheckpointPath: cpPath, RequireCheckpoint: true})
	if err != nil {
		b.Fatal(err)
	}
	// A record, so that the stop checkpoints (with its Merkle tree file),
	// as a server's stop does.
	if _, err := w.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "server-stop", Outcome: audit.Success, Actor: "system"}}); err != nil {
		b.Fatal(err)
	}
	w.Close()
	l.Close()
	b.ResetTimer()
	for b.Loop() {
		l, err := wal.Open(dir, wal.Options{})
		if err != nil {
			b.Fatal(err)
		}
		w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: l, Store: st, Signer: priv, CheckpointPath: cpPath, RequireCheckpoint: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		w.Close()
		l.Close()
		b.StartTimer()
	}
}

func BenchmarkParsePayload(b *testing.B) {
	r := audit.Record{Seq: 12345, Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Event: "tool-call", Outcome: audit.Success,
		Actor: "alice", KeyID: "abcdefghijklmnop", RequestID: fmt.Sprintf("%032x", 99), Remote: "127.0.0.1:51234",
		Target: "tool:finance.pay_invoice", Detail: map[string]any{"upstream": "finance", "args_sha256": strings.Repeat("ab", 32)}}
	p, _ := r.Canonical()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := audit.ParsePayload(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProveMillion: an evidence export's proofs (10 records) in a
// chain of 1M records: reading the log to its checkpoint, hashing every
// leaf, building the tree.
func BenchmarkProveMillion(b *testing.B) {
	const n = 1_000_000
	dir, cpPath, priv := bigLog(b, n)
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ostiary.db"), sqlite.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	w, err := audit.NewWriter(context.Background(), audit.WriterConfig{Log: l, Store: st, Signer: priv, CheckpointPath: cpPath, RequireCheckpoint: true})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	seqs := []uint64{1, 2, 1000, 50_000, 123_456, 500_000, 777_777, 999_998, 999_999, n}
	b.ResetTimer()
	for b.Loop() {
		if _, proven, err := w.Prove(context.Background(), seqs); err != nil || len(proven) != len(seqs) {
			b.Fatal(err)
		}
	}
}
