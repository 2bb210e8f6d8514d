package wal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// records returns n payloads of about 300 bytes, the size of an audit
// record's canonical encoding.
func records(n int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = fmt.Appendf(nil, `{"actor":"alice","detail":{"tool":"files.read","args_hmac":"%064d"},"event":"tool-call","key_id":"k_2f9a1c","outcome":"success","prev":"%064x","seq":%d,"target":"tool:files.read","time":"2026-11-01T12:00:00.000000Z","v":1}`, i, i, i)
	}
	return b
}

// Durable records/s of group-committed batches on this disk: each batch is
// one write and one fdatasync.
func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			l := open(b, b.TempDir(), wal.Options{})
			batch := records(n)
			b.SetBytes(int64(len(batch[0]) * n))
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if err := l.AppendBatch(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// The disk's fdatasync latency for a 4 KiB write into a zero-filled file
// (as in a segment), and for an append that grows a file.
func BenchmarkFdatasync(b *testing.B) {
	for _, mode := range []string{"preallocated", "growing"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			page := make([]byte, 4096)
			if mode == "preallocated" {
				for off := int64(0); off < 64<<20; off += 1 << 20 {
					f.WriteAt(make([]byte, 1<<20), off)
				}
				f.Sync()
			}
			var off int64
			var synced time.Duration
			for b.Loop() {
				f.WriteAt(page, off%(64<<20))
				off += 4096
				t := time.Now()
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
				synced += time.Since(t)
			}
			b.ReportMetric(float64(synced.Microseconds())/float64(b.N), "µs/fdatasync")
		})
	}
}

// A log of 1M records of about 300 bytes, made once per benchmark.
func millionRecords(b *testing.B) string {
	dir := b.TempDir()
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	batch := records(500)
	for range 2000 {
		if err := l.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	return dir
}

// Reading every record back, CRCs checked.
func BenchmarkScan1M(b *testing.B) {
	l := open(b, millionRecords(b), wal.Options{})
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		r, _ := l.Reader(1)
		n := 0
		for r.Next() {
			n++
		}
		if r.Err() != nil || n != 1_000_000 {
			b.Fatal(n, r.Err())
		}
	}
	b.ReportMetric(float64(b.N)*1e6/time.Since(start).Seconds(), "records/s")
}

// Open of a log of 1M records: every frame of every segment checked, the
// last segment rewritten and synced.
func BenchmarkOpen1M(b *testing.B) {
	dir := millionRecords(b)
	b.ResetTimer()
	for b.Loop() {
		l, err := wal.Open(dir, wal.Options{})
		if err != nil || l.Last() != 1_000_000 {
			b.Fatal(err)
		}
		l.Close()
	}
}
