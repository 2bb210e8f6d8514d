package gateway

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/lru"
)

// Refusals of malformed requests, oversized bodies and another key's
// session ids are on record, one by one while a key stays within a budget
// (refusalRate, bursts of refusalBurst), and counted into one aggregated
// record per key and interval beyond it: a flood of bad requests cannot
// turn the audit log into an amplifier.
const (
	refusalRate     = 2
	refusalBurst    = 20
	refusalInterval = 10 * time.Second
)

// EventRequestsRefused is the aggregated record of refusals counted over
// a key's budget.
const EventRequestsRefused = "requests-refused"

type refusals struct {
	mu     sync.Mutex
	budget *lru.Map[string, *rate.Limiter]
	counts *lru.Map[string, *refusalCount]
}

type refusalCount struct {
	n      int
	since  time.Time
	sample audit.Record
}

func newRefusals() *refusals {
	return &refusals{budget: lru.New[string, *rate.Limiter](10000), counts: lru.New[string, *refusalCount](10000)}
}

// refuse records a refused request of p (reason, detail), or counts it.
func (g *Gateway) refuse(ctx context.Context, p *authn.Principal, reason string, detail map[string]any) {
	g.refuseAs(ctx, p, edge.EventRequestRefused, reason, detail)
}

// refuseAs is refuse with the record's event named.
func (g *Gateway) refuseAs(ctx context.Context, p *authn.Principal, event, reason string, detail map[string]any) {
	rec := p.Record(event, "")
	rec.Outcome, rec.Reason, rec.Detail = audit.Denied, reason, detail
	now := g.cfg.Now()
	r := g.refused
	r.mu.Lock()
	l := r.budget.GetOrAdd(p.KeyID, func() *rate.Limiter { return rate.NewLimiter(refusalRate, refusalBurst) })
	within := l.AllowN(now, 1)
	if !within {
		c := r.counts.GetOrAdd(p.KeyID, func() *refusalCount { return &refusalCount{since: now} })
		c.n++
		c.sample = rec
	}
	r.mu.Unlock()
	if within {
		if _, err := g.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
			g.cfg.Logger.Error("cannot record a refused request", "request_id", p.RequestID, "reason", reason, "err", err)
		}
	}
}

// flushRefusals writes the aggregated records of counts older than the
// interval (all of them when all is set).
func (g *Gateway) flushRefusals(all bool) {
	now := g.cfg.Now()
	r := g.refused
	var out []audit.Record
	r.mu.Lock()
	var done []string
	for key, c := range r.counts.All() {
		if all || now.Sub(c.since) >= refusalInterval {
			rec := c.sample
			rec.Event = EventRequestsRefused
			rec.Detail = map[string]any{"count": c.n, "since": audit.FormatTime(c.since), "sample_reason": c.sample.Reason}
			out = append(out, rec)
			done = append(done, key)
		}
	}
	for _, key := range done {
		r.counts.Delete(key)
	}
	r.mu.Unlock()
	for _, rec := range out {
		if _, err := g.cfg.Auditor.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
			g.cfg.Logger.Error("cannot record aggregated refusals", "key_id", rec.KeyID, "count", rec.Detail["count"], "err", err)
		}
	}
}

// flushRefusalsEvery runs until Close, then writes what is still counted.
func (g *Gateway) flushRefusalsEvery(tick time.Duration) {
	defer g.detached.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-g.life.Done():
			g.flushRefusals(true)
			return
		case <-t.C:
			g.flushRefusals(false)
		}
	}
}
