package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

// record returns the i-th test record (1-based), not yet sealed.
func record(i int) audit.Record {
	return audit.Record{Time: t0.Add(time.Duration(i) * time.Second), Event: fmt.Sprintf("event-%d", i%3), Outcome: []audit.Outcome{audit.Success, audit.Denied, audit.Failed}[i%3],
		Reason: fmt.Sprintf("reason-%d", i%2), Actor: fmt.Sprintf("user%d", i%2), KeyID: "key" + fmt.Sprint(i), RequestID: fmt.Sprintf("req-%d", i),
		Remote: "127.0.0.1:4000", Target: fmt.Sprintf("tool:t%d", i),
		Detail: map[string]any{"i": i, "text": fmt.Sprintf("needle-%d ünïcode \u2028", i), "list": []any{"a", true, 3}, "nested": map[string]any{"ok": i%2 == 0}}}
}

// appendRecords appends records from..to (inclusive) in one transaction,
// sealed onto the store's head, and returns them as sealed.
func appendRecords(t *testing.T, s Store, from, to int) []audit.Record {
	t.Helper()
	var out []audit.Record
	head, last, err := s.AuditHead(ctx) // outside the transaction: a store may read its head on the connection writing
	must(t, err)
	mustWrite(t, s, func(tx Tx) error {
		out = nil
		seq, prev := head, last
		for i := from; i <= to; i++ {
			r := record(i)
			if err := seal(tx, &r, seq+1, prev); err != nil {
				return err
			}
			seq, prev = r.Seq, r.Hash
			out = append(out, r)
		}
		return nil
	})
	return out
}

// seal chains r after prev as record seq and appends it.
func seal(tx Tx, r *audit.Record, seq uint64, prev [32]byte) error {
	r.Seq, r.Prev = seq, prev
	h, err := r.ComputeHash()
	if err != nil {
		return err
	}
	r.Hash = h
	return tx.AppendRecord(ctx, r)
}

func scan(t *testing.T, s Store) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	must(t, s.ScanRecords(ctx, func(r *audit.Record) error { out = append(out, r); return nil }))
	return out
}

// sameRecord reports how got differs from want; a record read back must
// hash to what was appended (its detail, decoded, re-encodes to the same
// canonical bytes).
func sameRecord(got, want audit.Record) error {
	h, err := got.ComputeHash()
	switch {
	case err != nil:
		return err
	case got.Seq != want.Seq || !got.Time.Equal(want.Time) || got.Event != want.Event || got.Outcome != want.Outcome || got.Reason != want.Reason ||
		got.Actor != want.Actor || got.KeyID != want.KeyID || got.RequestID != want.RequestID || got.Remote != want.Remote || got.Target != want.Target:
		return fmt.Errorf("record %d read back as %+v, appended as %+v", want.Seq, got, want)
	case got.Prev != want.Prev || got.Hash != want.Hash:
		return fmt.Errorf("record %d: prev or hash changed", want.Seq)
	case h != want.Hash:
		return fmt.Errorf("record %d no longer hashes to its hash (detail %v)", want.Seq, got.Detail)
	}
	return nil
}

func testAuditEmpty(t *testing.T, s Store) {
	seq, head, err := s.AuditHead(ctx)
	if err != nil || seq != 0 || head != [32]byte{} {
		t.Errorf("empty store: head %d %x, %v", seq, head, err)
	}
	_, err = s.AuditHashAt(ctx, 1)
	wantKind(t, err, fault.NotFound, "hash of a record that does not exist")
	if rs := scan(t, s); len(rs) != 0 {
		t.Errorf("empty store scans %d records", len(rs))
	}
	cps, err := s.Checkpoints(ctx)
	if err != nil || len(cps) != 0 {
		t.Errorf("empty store: checkpoints %v, %v", cps, err)
	}
}

// Records come back in seq order, each exactly as appended, across
// batches; the head and the hash at any seq say the same.
func testAuditReadBack(t *testing.T, s Store) {
	want := append(appendRecords(t, s, 1, 3), appendRecords(t, s, 4, 7)...)
	got := scan(t, s)
	if len(got) != len(want) {
		t.Fatalf("%d records read back, %d appended", len(got), len(want))
	}
	for i := range want {
		if err := sameRecord(*got[i], want[i]); err != nil {
			t.Error(err)
		}
	}
	seq, head, err := s.AuditHead(ctx)
	if err != nil || seq != 7 || head != want[6].Hash {
		t.Errorf("head %d %x, %v; want 7 %x", seq, head, err, want[6].Hash)
	}
	if h, err := s.AuditHashAt(ctx, 4); err != nil || h != want[3].Hash {
		t.Errorf("hash at 4: %x, %v", h, err)
	}
	// A scan stops at the first error its function returns, and returns it.
	stop := errors.New("stop")
	n := 0
	if err := s.ScanRecords(ctx, func(*audit.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("scan after an error: %d records, %v", n, err)
	}
}

// A transaction whose function fails stores nothing it wrote: neither
// records nor the state they describe.
func testAuditFailedBatch(t *testing.T, s Store) {
	appendRecords(t, s, 1, 2)
	boom := errors.New("boom")
	_, prev, err := s.AuditHead(ctx)
	must(t, err)
	err = write(s, func(tx Tx) error {
		r := record(3)
		if err := seal(tx, &r, 3, prev); err != nil {
			return err
		}
		if err := tx.InsertRole(ctx, identity.Role{Name: "ghost", Grants: grants(t, "invoke:*"), CreatedAt: t0}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("the batch's error is not returned: %v", err)
	}
	if seq, _, _ := s.AuditHead(ctx); seq != 2 || len(scan(t, s)) != 2 {
		t.Errorf("a failed batch left records: head %d", seq)
	}
	_, err = s.RoleByName(ctx, "ghost")
	wantKind(t, err, fault.NotFound, "a role inserted by a failed batch")
	appendRecords(t, s, 3, 3) // and the store goes on
	if seq, _, _ := s.AuditHead(ctx); seq != 3 {
		t.Errorf("after a failed batch, the next one reached %d", seq)
	}
}

// A failing step undoes what it wrote and returns its error; the rest of
// the transaction, before and after it, commits.
func testAuditStep(t *testing.T, s Store) {
	boom := errors.New("boom")
	var stepErr error
	mustWrite(t, s, func(tx Tx) error {
		if err := tx.InsertRole(ctx, identity.Role{Name: "before", Grants: grants(t, "invoke:*"), CreatedAt: t0}); err != nil {
			return err
		}
		stepErr = tx.Step(ctx, func() error {
			r := record(1)
			if err := seal(tx, &r, 1, [32]byte{}); err != nil {
				return err
			}
			if err := tx.InsertRole(ctx, identity.Role{Name: "inside", Grants: grants(t, "invoke:*"), CreatedAt: t0}); err != nil {
				return err
			}
			return boom
		})
		if err := tx.Step(ctx, func() error {
			r := record(2)
			return seal(tx, &r, 1, [32]byte{}) // seq 1 is free again
		}); err != nil {
			return err
		}
		return tx.InsertRole(ctx, identity.Role{Name: "after", Grants: grants(t, "invoke:*"), CreatedAt: t0})
	})
	if !errors.Is(stepErr, boom) {
		t.Errorf("a failed step returned %v", stepErr)
	}
	rs := scan(t, s)
	if len(rs) != 1 || rs[0].Event != record(2).Event || rs[0].RequestID != "req-2" {
		t.Errorf("after a failed step: %d records, first %+v", len(rs), rs)
	}
	for name, kept := range map[string]bool{"before": true, "inside": false, "after": true} {
		if _, err := s.RoleByName(ctx, name); (err == nil) != kept {
			t.Errorf("role %s: %v (kept: %v)", name, err, kept)
		}
	}
}

// Two records never share a seq: the chain cannot fork.
func testAuditSeqUnique(t *testing.T, s Store) {
	appendRecords(t, s, 1, 3)
	err := write(s, func(tx Tx) error {
		r := record(9)
		return seal(tx, &r, 2, [32]byte{})
	})
	if err == nil {
		t.Error("a second record with seq 2 was stored")
	}
	if rs := scan(t, s); len(rs) != 3 || rs[1].RequestID != "req-2" {
		t.Errorf("after a duplicate seq: %d records", len(rs))
	}
}

// AuditAfter returns exactly the records after a seq whose event is one
// of those asked for, oldest first and as appended, and stops at its
// function's first error.
func testAuditAfter(t *testing.T, s Store) {
	all := appendRecords(t, s, 1, 12) // record i has event event-(i%3)
	after := func(seq uint64, events ...string) []uint64 {
		t.Helper()
		out := []uint64{}
		must(t, s.AuditAfter(ctx, seq, events, func(r *audit.Record) error {
			if err := sameRecord(*r, all[r.Seq-1]); err != nil {
				t.Error(err)
			}
			out = append(out, r.Seq)
			return nil
		}))
		return out
	}
	for _, c := range []struct {
		seq    uint64
		events []string
		want   []uint64
	}{
		{4, []string{"event-1", "event-2"}, []uint64{5, 7, 8, 10, 11}},
		{0, []string{"event-0"}, []uint64{3, 6, 9, 12}},
		{0, []string{"event-0", "event-1", "event-2"}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{11, []string{"event-2"}, []uint64{}},
		{12, []string{"event-0"}, []uint64{}},
		{0, []string{"no-such-event"}, []uint64{}},
		{0, nil, []uint64{}},
	} {
		if got := after(c.seq, c.events...); !slices.Equal(got, c.want) {
			t.Errorf("after %d of %q: %v, want %v", c.seq, c.events, got, c.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := s.AuditAfter(ctx, 0, []string{"event-1"}, func(*audit.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("after an error: %d records, %v", n, err)
	}
}

// Queries return matching records newest first, each filter alone and
// together, up to the limit, paging backwards by seq.
func testAuditQuery(t *testing.T, s Store) {
	all := appendRecords(t, s, 1, 12)
	seqs := func(rs []audit.Record) []uint64 {
		out := []uint64{}
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	for _, c := range []struct {
		name string
		q    audit.Query
		want []uint64
	}{
		{"all", audit.Query{Limit: 100}, []uint64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"limit", audit.Query{Limit: 3}, []uint64{12, 11, 10}},
		{"actor", audit.Query{Actor: "user1", Limit: 100}, []uint64{11, 9, 7, 5, 3, 1}},
		{"event", audit.Query{Event: "event-0", Limit: 100}, []uint64{12, 9, 6, 3}},
		{"outcome", audit.Query{Outcome: audit.Denied, Limit: 100}, []uint64{10, 7, 4, 1}},
		{"request", audit.Query{RequestID: "req-5", Limit: 100}, []uint64{5}},
		{"target", audit.Query{Target: "tool:t8", Limit: 100}, []uint64{8}},
		{"target exactly", audit.Query{Target: "tool:t1", Limit: 100}, []uint64{1}},
		{"since", audit.Query{Since: all[9].Time, Limit: 100}, []uint64{12, 11, 10}},
		{"until (exclusive)", audit.Query{Until: all[2].Time, Limit: 100}, []uint64{2, 1}},
		{"before seq", audit.Query{BeforeSeq: 4, Limit: 100}, []uint64{3, 2, 1}},
		{"contains detail", audit.Query{Contains: "needle-7 ", Limit: 100}, []uint64{7}},
		{"contains target", audit.Query{Contains: "tool:t1", Limit: 100}, []uint64{12, 11, 10, 1}},
		{"contains reason", audit.Query{Contains: "reason-1", Limit: 100}, []uint64{11, 9, 7, 5, 3, 1}},
		{"together", audit.Query{Actor: "user0", Event: "event-0", BeforeSeq: 12, Limit: 100}, []uint64{6}},
		{"nothing", audit.Query{Actor: "nobody", Limit: 100}, []uint64{}},
	} {
		got, err := s.QueryAudit(ctx, c.q)
		if err != nil || !slices.Equal(seqs(got), c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, seqs(got), err, c.want)
		}
		for _, r := range got {
			if err := sameRecord(r, all[r.Seq-1]); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
	}
}

// Checkpoints are kept in seq order; saving one twice is not an error and
// keeps one.
func testCheckpoints(t *testing.T, s Store) {
	rs := appendRecords(t, s, 1, 4)
	cps := []audit.Checkpoint{
		{Seq: 4, Hash: rs[3].Hash, Time: t0.Add(time.Minute), KeyID: "k1", Sig: []byte("sig-4")},
		{Seq: 2, Hash: rs[1].Hash, Time: t0, KeyID: "k1", Sig: []byte("sig-2")},
	}
	for _, c := range append(cps, cps[0]) {
		must(t, s.SaveCheckpoint(ctx, c))
	}
	got, err := s.Checkpoints(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("checkpoints %+v, %v", got, err)
	}
	for i, want := range []audit.Checkpoint{cps[1], cps[0]} {
		g := got[i]
		if g.Seq != want.Seq || g.Hash != want.Hash || !g.Time.Equal(want.Time) || g.KeyID != want.KeyID || string(g.Sig) != string(want.Sig) {
			t.Errorf("checkpoint %d: %+v, want %+v", i, g, want)
		}
	}
}

// sealed returns test records from..to chained from scratch, as the writer
// seals them for the log.
func sealed(t *testing.T, from, to int) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	var prev [32]byte
	for i := 1; i <= to; i++ {
		r := record(i)
		r.Seq, r.Prev = uint64(i), prev
		h, err := r.ComputeHash()
		must(t, err)
		r.Hash, prev = h, h
		if i >= from {
			out = append(out, &r)
		}
	}
	return out
}

// testAuditIndex: the index is filled behind the log, idempotently; its
// position only moves forward; a reset empties it but keeps the
// reconciled position, so a rebuild cut short never makes an applied
// change look unapplied.
func testAuditIndex(t *testing.T, s Store) {
	through, reconciled, err := s.IndexedThrough(ctx)
	must(t, err)
	if through != 0 || reconciled != 0 {
		t.Fatalf("empty store indexed through %d, reconciled %d", through, reconciled)
	}
	recs := sealed(t, 1, 6)
	must(t, s.IndexRecords(ctx, recs[:4], 4))
	// A change's record indexed in its own transaction, ahead of the rest.
	ahead := *recs[5]
	mustWrite(t, s, func(tx Tx) error { return tx.AppendRecord(ctx, &ahead) })
	// Indexing again what is there keeps the rows and moves on.
	must(t, s.IndexRecords(ctx, recs[2:], 6))
	got := scan(t, s)
	if len(got) != 6 {
		t.Fatalf("%d records indexed, want 6", len(got))
	}
	for i, r := range got {
		if err := sameRecord(*r, *recs[i]); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
	}
	if through, reconciled, _ = s.IndexedThrough(ctx); through != 6 || reconciled != 6 {
		t.Fatalf("indexed through %d, reconciled %d; want 6, 6", through, reconciled)
	}
	must(t, s.IndexRecords(ctx, nil, 3)) // never backwards
	if through, _, _ = s.IndexedThrough(ctx); through != 6 {
		t.Fatalf("position moved back to %d", through)
	}
	for seq, want := range map[uint64]bool{1: true, 6: true, 7: false} {
		if ok, err := s.AuditIndexed(ctx, seq); err != nil || ok != want {
			t.Errorf("AuditIndexed(%d) = %v, %v; want %v", seq, ok, err, want)
		}
	}
	must(t, s.ResetIndex(ctx))
	if n := len(scan(t, s)); n != 0 {
		t.Fatalf("%d records left after a reset", n)
	}
	if through, reconciled, _ = s.IndexedThrough(ctx); through != 0 || reconciled != 6 {
		t.Fatalf("after reset: through %d, reconciled %d; want 0, 6", through, reconciled)
	}
	must(t, s.IndexRecords(ctx, recs[:2], 2))
	if through, reconciled, _ = s.IndexedThrough(ctx); through != 2 || reconciled != 6 {
		t.Fatalf("rebuilding: through %d, reconciled %d; want 2, 6", through, reconciled)
	}
}
