package adminapi

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/evidence"
)

// lagging is an index that is always some records behind the log (a
// database locked by another process, a burst the indexer has not
// stored yet).
type lagging struct{ behind uint64 }

func (l lagging) Settle(context.Context, time.Duration) uint64 { return l.behind }

// A bundle is "every record of the case": exported from an index that has
// not reached the log, it would silently leave out the case's newest
// records, and its signature would vouch for the shortened case. The
// export is refused (503, try again) and the refusal is on record.
func TestBundleRefusedWhileIndexLags(t *testing.T) {
	var lag lagging
	f := newFixture(t, func(c *Config) { c.Evidence, c.Index = c.Auditor.(*audit.Writer), &lag })
	if _, err := f.env.Writer.Write(ctx, audit.Entry{Record: audit.Record{Event: "whoami", Outcome: audit.Success, Actor: "admin", RequestID: "case-1"}}); err != nil {
		t.Fatal(err)
	}
	f.env.Settle()
	r := f.do(t, "GET", "/api/v1/evidence/bundle?request_id=case-1", "")
	if r.Code != http.StatusOK {
		t.Fatalf("an index that has caught up: %d %s", r.Code, r.Body)
	}
	if _, err := evidence.VerifyBundle(r.Body.Bytes(), f.env.Public); err != nil {
		t.Fatal(err)
	}
	lag.behind = 3
	r = f.do(t, "GET", "/api/v1/evidence/bundle?request_id=case-1", "")
	if r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Body.String(), "behind") {
		t.Fatalf("an index 3 records behind the log: %d %s", r.Code, r.Body)
	}
	f.env.Settle()
	recs, err := f.env.Store.QueryAudit(ctx, audit.Query{Event: evidence.EventExport, Limit: 10})
	if err != nil || len(recs) != 2 || recs[0].Outcome == audit.Success {
		t.Fatalf("export records: %+v %v", recs, err)
	}
}

// heldProver is the writer's Prover; its first Prove is held until
// released, the others pass.
type heldProver struct {
	*audit.Writer
	calls       *atomic.Int32
	in, release chan struct{}
}

func (h heldProver) Prove(ctx context.Context, seqs []uint64) (audit.Checkpoint, []audit.Proven, error) {
	if h.calls.Add(1) == 1 {
		h.in <- struct{}{}
		<-h.release
	}
	return h.Writer.Prove(ctx, seqs)
}

// Every export reads the whole log: a flood of them is one at a time (503
// for the others, on record), not as many reads of the log as requests.
func TestBundleExportsOneAtATime(t *testing.T) {
	held := heldProver{calls: new(atomic.Int32), in: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, func(c *Config) { held.Writer = c.Auditor.(*audit.Writer); c.Evidence = held })
	if _, err := f.env.Writer.Write(ctx, audit.Entry{Record: audit.Record{Event: "whoami", Outcome: audit.Success, Actor: "admin", RequestID: "case-1"}}); err != nil {
		t.Fatal(err)
	}
	f.env.Settle()
	first := make(chan int)
	go func() { first <- f.do(t, "GET", "/api/v1/evidence/bundle?request_id=case-1", "").Code }()
	<-held.in // the first is proving
	r := f.do(t, "GET", "/api/v1/evidence/bundle?request_id=case-1", "")
	if r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Body.String(), "under way") {
		t.Fatalf("a second export during the first: %d %s", r.Code, r.Body)
	}
	close(held.release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("the first export: %d", code)
	}
	if r := f.do(t, "GET", "/api/v1/evidence/bundle?request_id=case-1", ""); r.Code != http.StatusOK {
		t.Fatalf("an export after the first: %d %s", r.Code, r.Body)
	}
}
