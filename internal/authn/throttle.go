package authn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/lru"
)

// FailureGuard stands before authentication on every surface. It limits
// failed authentications per source address (an IPv6 source by its /64)
// and per presented key id, and keeps the audit log from being used as an
// amplifier: failures within budget are recorded one by one as they
// happen; those over it are counted, per source, and recorded as one
// aggregated record (count, window, a sample) when the interval ends.
//
// A source over its budget is answered 429 before any lookup is made. A
// key id over its budget is answered 429 only when its secret is wrong: a
// correct key still works, so nobody can lock a key out by guessing at it.
type FailureGuard struct {
	rate     rate.Limit
	burst    int
	interval time.Duration
	auditor  audit.Appender
	logger   *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	bySource  *lru.Map[netip.Prefix, *rate.Limiter]
	byKey     *lru.Map[string, *rate.Limiter]
	windows   *lru.Map[windowKey, *window]
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// windowKey is a source and the event whose refusals a window counts.
type windowKey struct {
	src   netip.Prefix
	event string
}

// window gathers a source's refusals over its budget in one interval.
type window struct {
	start  time.Time
	count  int          // failures after the first, not yet on record
	sample audit.Record // the latest of them
}

// guardSize bounds each of the guard's maps.
const guardSize = 10000

// aggregated is the event of a record counting refusals of event.
func aggregated(event string) string {
	switch event {
	case audit.EventAuthnFailure:
		return EventAuthnFailures
	case "request-refused":
		return "requests-refused"
	}
	return event + "-aggregated"
}

// Note records rec, a request from remote refused before authentication
// (an ambiguous header, a foreign origin): one by one within the source's
// budget (the one failed authentications draw on), counted into one
// aggregated record per source and interval beyond it.
func (g *FailureGuard) Note(ctx context.Context, remote string, rec audit.Record) {
	now := g.now()
	src := Source(remote)
	g.mu.Lock()
	within := g.rate == 0 || g.buckets(src, "")[0].AllowN(now, 1)
	if !within {
		g.count(src, rec, now)
	}
	g.mu.Unlock()
	if within {
		if _, err := g.auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
			g.logger.Error("cannot record a refused request", "request_id", rec.RequestID, "reason", rec.Reason, "err", err)
		}
	}
}

// EventAuthnFailures is the aggregated record of failures counted in one
// interval.
const EventAuthnFailures = "authn-failures"

// NewFailureGuard returns a guard allowing perSecond failures (bursts of
// burst) per source and per key id, aggregating records over interval. A
// zero perSecond limits nothing but still aggregates.
func NewFailureGuard(perSecond float64, burst int, interval time.Duration, auditor audit.Appender, logger *slog.Logger, now func() time.Time) (*FailureGuard, error) {
	if auditor == nil || logger == nil || now == nil || interval <= 0 {
		return nil, errors.New("authn: failure guard needs an auditor, a logger, a clock and an interval")
	}
	g := &FailureGuard{rate: rate.Limit(perSecond), burst: max(1, burst), interval: interval, auditor: auditor, logger: logger, now: now,
		bySource: lru.New[netip.Prefix, *rate.Limiter](guardSize), byKey: lru.New[string, *rate.Limiter](guardSize),
		windows: lru.New[windowKey, *window](guardSize), stop: make(chan struct{}), stopped: make(chan struct{})}
	go g.flushEvery(min(interval, time.Second))
	return g, nil
}

// Source is the budget a request's remote address draws on.
func Source(remote string) netip.Prefix {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64 // one host usually holds a whole /64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// ReasonThrottled is the reason of a request refused because its source
// spent its budget of failures.
const ReasonThrottled = "source-throttled"

// Admit reports whether a's source may try to authenticate now, or how long
// it must wait. A refusal is counted in the source's aggregated record.
func (g *FailureGuard) Admit(a Attempt) (bool, time.Duration) {
	if g.rate == 0 {
		return true, 0
	}
	src := Source(a.Remote)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.bySource.Get(src)
	if !ok || l.TokensAt(now) >= 1 {
		return true, 0
	}
	g.count(src, FailureRecord(&Failure{Reason: ReasonThrottled}, a), now)
	return false, wait(l, now)
}

// Failed records the failed authentication of a and takes it from the
// budgets of its source and key id. Within budget, the failure is recorded
// as it happens (the client is answered 503 if that record cannot be
// written). Over budget, it is counted in its source's aggregated record
// and limited reports it: the client is answered 429 with Retry-After.
func (g *FailureGuard) Failed(ctx context.Context, a Attempt, err error) (limited bool, retry time.Duration, rec audit.Record, werr error) {
	rec = FailureRecord(err, a)
	now := g.now()
	src := Source(a.Remote)
	g.mu.Lock()
	if g.rate != 0 {
		for _, l := range g.buckets(src, rec.KeyID) {
			if !l.AllowN(now, 1) {
				limited, retry = true, max(retry, wait(l, now))
			}
		}
	}
	if limited {
		g.count(src, rec, now)
	}
	g.mu.Unlock()
	if !limited {
		_, werr = g.auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec})
	}
	return limited, retry, rec, werr
}

// count adds rec to its source's aggregated record. g.mu is held.
func (g *FailureGuard) count(src netip.Prefix, rec audit.Record, now time.Time) {
	k := windowKey{src, rec.Event}
	w, ok := g.windows.Get(k)
	if !ok {
		w = &window{start: now}
		g.windows.Put(k, w)
	}
	w.count++
	w.sample = rec
}

// buckets returns the limiters of a source and a key id, made as needed.
func (g *FailureGuard) buckets(src netip.Prefix, keyID string) []*rate.Limiter {
	mk := func() *rate.Limiter { return rate.NewLimiter(g.rate, g.burst) }
	out := []*rate.Limiter{g.bySource.GetOrAdd(src, mk)}
	if keyID != "" {
		out = append(out, g.byKey.GetOrAdd(keyID, mk))
	}
	return out
}

func wait(l *rate.Limiter, now time.Time) time.Duration {
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return max(d, time.Second)
}

// aggregate is the record of the failures counted in w, or nil.
func (w *window) aggregate(interval time.Duration) *audit.Record {
	if w == nil || w.count == 0 {
		return nil
	}
	rec := w.sample
	rec.Event = aggregated(rec.Event)
	d := map[string]any{"count": w.count, "window_start": audit.FormatTime(w.start), "window_s": int(interval / time.Second), "sample_reason": rec.Reason}
	for k, v := range rec.Detail {
		d["sample_"+k] = v
	}
	rec.Detail = d
	w.count = 0
	return &rec
}

// flushEvery writes the aggregated records of ended intervals.
func (g *FailureGuard) flushEvery(tick time.Duration) {
	defer close(g.stopped)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			g.flush(true)
			return
		case <-t.C:
			g.flush(false)
		}
	}
}

// flush writes what ended intervals (or, at shutdown, all) still hold.
func (g *FailureGuard) flush(all bool) {
	now := g.now()
	var out []audit.Record
	g.mu.Lock()
	var ended []windowKey
	for src, w := range g.windows.All() {
		if all || now.Sub(w.start) >= g.interval {
			if rec := w.aggregate(g.interval); rec != nil {
				out = append(out, *rec)
			}
			if !all {
				ended = append(ended, src)
			}
		}
	}
	for _, src := range ended {
		g.windows.Delete(src)
	}
	g.mu.Unlock()
	for _, rec := range out {
		g.write(rec)
	}
}

func (g *FailureGuard) write(rec audit.Record) {
	if _, err := g.auditor.Write(context.Background(), audit.Entry{Record: rec}); err != nil {
		g.logger.Error("cannot record aggregated authentication failures", "count", rec.Detail["count"], "remote", rec.Remote, "err", err)
	}
}

// Close writes what is still counted and stops the flusher. Call it
// before the audit writer closes.
func (g *FailureGuard) Close() {
	g.closeOnce.Do(func() { close(g.stop) })
	<-g.stopped
}
