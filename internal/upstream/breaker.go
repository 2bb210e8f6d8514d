package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

// EventCircuitOpen records an upstream's circuit opening.
const EventCircuitOpen = "upstream-circuit-open"

// breaker is an upstream's circuit breaker: after threshold consecutive
// transport failures it opens for cooldown, during which calls fail at once
// without touching the upstream; then one trial call decides whether it
// closes again.
type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	trial     bool // a half-open trial call is in flight
}

const (
	breakerThreshold = 5
	breakerCooldown  = 30 * time.Second
)

// allow reports whether a call may go ahead now.
func (b *breaker) allow(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < breakerThreshold:
		return true, 0
	case now.Before(b.openUntil):
		return false, b.openUntil.Sub(now)
	case b.trial:
		return false, time.Second
	}
	b.trial = true // half-open: let this one call through
	return true, 0
}

// done records a call's outcome; it reports whether the circuit just opened.
func (b *breaker) done(failed bool, now time.Time, cooldown time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if !failed {
		b.failures = 0
		return false
	}
	b.failures++
	if b.failures >= breakerThreshold {
		wasOpen := now.Before(b.openUntil)
		b.openUntil = now.Add(cooldown)
		return !wasOpen
	}
	return false
}

// guard runs fn under u's circuit breaker and concurrency limit.
func (p *Pool) guard(ctx context.Context, u Upstream, fn func() error) error {
	bv, _ := p.breakers.LoadOrStore(u.Name, &breaker{})
	b := bv.(*breaker)
	if ok, wait := b.allow(p.cfg.Now()); !ok {
		return &suspendedError{fmt.Sprintf("upstream %s is failing; calls are suspended for %s (circuit breaker)", u.Name, wait.Round(time.Second))}
	}
	sv, _ := p.slots.LoadOrStore(u.Name, make(chan struct{}, p.cfg.MaxConcurrent))
	slots := sv.(chan struct{})
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		b.done(false, p.cfg.Now(), p.cfg.BreakerCooldown) // not the upstream's fault
		return fmt.Errorf("upstream %s is at its concurrency limit: %w", u.Name, ctx.Err())
	}
	err := fn()
	if b.done(transportFailure(ctx, err), p.cfg.Now(), p.cfg.BreakerCooldown) {
		p.cfg.Logger.Warn("upstream circuit opened", "upstream", u.Name)
		rec := audit.Record{Event: EventCircuitOpen, Outcome: audit.Failed, Reason: "upstream-failing", Actor: "system",
			Target: "upstream:" + u.Name, Detail: map[string]any{"cooldown_s": int(p.cfg.BreakerCooldown.Seconds())}}
		if _, werr := p.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); werr != nil {
			p.cfg.Logger.Error("cannot record an opened circuit", "upstream", u.Name, "err", werr)
		}
	}
	return err
}

// suspendedError is a call refused by an open circuit: it never reached
// the upstream.
type suspendedError struct{ msg string }

func (e *suspendedError) Error() string { return e.msg }

// Suspended reports whether err is a call refused by an open circuit.
func Suspended(err error) bool {
	var s *suspendedError
	return errors.As(err, &s)
}
