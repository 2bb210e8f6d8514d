package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// EventCircuitOpen records an upstream's circuit opening.
const EventCircuitOpen = "upstream-circuit-open"

// breaker is an upstream's circuit breaker: after threshold consecutive
// transport failures it opens for cooldown, during which calls fail at once
// without touching the upstream; then one trial call decides whether it
// closes again. Outcomes that say nothing of the upstream's health (the
// caller cancelled, Ostiary refused to send, no slot was free) neither
// count as failures nor reset the count, and a call that began before the
// circuit last opened cannot close it (gen).
//
// The circuit is shared by every user of the upstream, so it opens only on
// failures of at least two users: one user's calls that time out (a tool
// they hang on purpose, say) fail for that user alone and cannot suspend
// the upstream for everyone.
type breaker struct {
	mu        sync.Mutex
	failures  int
	users     map[string]bool // whose calls make up the failures
	open      bool            // opened, and not closed since by a healthy call
	openUntil time.Time
	trial     bool   // a half-open trial call is in flight
	gen       uint64 // times the circuit opened

	// Mirrors of open, failures > 0 and gen, written under mu, so that
	// a call to a healthy upstream takes the mutex, shared by every user
	// of the upstream, neither when it starts nor when it ends.
	openA, failingA atomic.Bool
	genA            atomic.Uint64
}

// mirror updates the atomic mirrors; b.mu is held.
func (b *breaker) mirror() {
	b.openA.Store(b.open)
	b.failingA.Store(b.failures > 0)
	b.genA.Store(b.gen)
}

const (
	breakerThreshold = 5
	breakerCooldown  = 30 * time.Second
)

// outcome is what a call says of its upstream's health.
type outcome int

const (
	neutral outcome = iota
	healthy
	failing
)

// admission is a call let through: the circuit's generation when it
// started, and whether it is the half-open trial.
type admission struct {
	gen   uint64
	trial bool
}

// allow reports whether a call may go ahead now.
func (b *breaker) allow(now time.Time) (admission, bool, time.Duration) {
	if gen := b.genA.Load(); !b.openA.Load() {
		return admission{gen: gen}, true, 0 // closed (a call that began before it opens cannot close it: gen)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return admission{gen: b.gen}, true, 0
	case now.Before(b.openUntil):
		return admission{}, false, b.openUntil.Sub(now)
	case b.trial:
		return admission{}, false, time.Second
	}
	b.trial = true // half-open: let this one call through (open, gen unchanged: no mirror to update)
	return admission{gen: b.gen, trial: true}, true, 0
}

// done records a call's outcome; it reports whether the circuit just opened.
func (b *breaker) done(a admission, user string, o outcome, now time.Time, cooldown time.Duration) bool {
	if o == neutral && !a.trial || o == healthy && !a.trial && !b.openA.Load() && !b.failingA.Load() {
		return false // changes nothing
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.mirror()
	if a.trial {
		b.trial = false
	}
	if a.gen != b.gen || o == neutral { // began before the circuit last opened, or says nothing
		return false
	}
	if o == healthy {
		b.failures, b.users, b.open = 0, nil, false
		return false
	}
	if b.users == nil {
		b.users = map[string]bool{}
	}
	b.users[user] = true
	b.failures++
	if b.failures >= breakerThreshold && (len(b.users) >= 2 || a.trial) {
		wasOpen := b.open && now.Before(b.openUntil)
		b.open, b.openUntil = true, now.Add(cooldown)
		if !wasOpen {
			b.gen++
		}
		return !wasOpen
	}
	return false
}

// health is what err, ending a call made under ctx, says of the upstream.
func health(ctx context.Context, err error) outcome {
	_, refusedCmd := spec.RefusedCommand(err)
	switch {
	case err == nil || Answered(err):
		return healthy
	case Refused(err) || refusedCmd || Busy(err):
		return neutral
	case ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return neutral // the caller gave up
	}
	return failing
}

// guard runs fn under u's circuit breaker and its fair share of u's
// concurrency slots for user and what (a tool, prompt or resource).
func (p *Pool) guard(ctx context.Context, u spec.Upstream, user, what string, fn func() error) error {
	bv, _ := p.breakers.LoadOrStore(u.Name, &breaker{})
	b := bv.(*breaker)
	adm, ok, wait := b.allow(p.cfg.Now())
	if !ok {
		until := p.cfg.Now().Add(wait).UTC().Truncate(time.Second)
		return &suspendedError{fmt.Sprintf("upstream %s is failing: its circuit is open until %s, calls are refused until then (circuit breaker)", u.Name, until.Format(time.RFC3339))}
	}
	sv, ok := p.slots.Load(u.Name)
	if !ok {
		sv, _ = p.slots.LoadOrStore(u.Name, newSlots(p.cfg.MaxConcurrent))
	}
	release, err := sv.(*slots).take(u.Name, user, what)
	if err != nil {
		b.done(adm, user, neutral, p.cfg.Now(), p.cfg.BreakerCooldown)
		return err
	}
	defer release()
	start := time.Now()
	err = fn()
	o := health(ctx, err)
	if p.cfg.Observe != nil {
		p.cfg.Observe(u.Name, time.Since(start), o == failing)
	}
	if b.done(adm, user, o, p.cfg.Now(), p.cfg.BreakerCooldown) {
		p.cfg.Logger.Warn("upstream circuit opened", "upstream", u.Name)
		rec := audit.Record{Event: EventCircuitOpen, Outcome: audit.Failed, Reason: "upstream-failing", Actor: "system",
			Target: "upstream:" + u.Name, Detail: map[string]any{"cooldown_s": int(p.cfg.BreakerCooldown.Seconds())}}
		if _, werr := p.cfg.Auditor.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); werr != nil {
			p.cfg.Logger.Error("cannot record an opened circuit", "upstream", u.Name, "err", werr)
		}
	}
	return err
}

// Circuits calls fn for each upstream that has a circuit breaker (every
// upstream called since the start), with whether its circuit is open: open,
// or half-open until its trial call succeeds.
func (p *Pool) Circuits(fn func(upstream string, open bool)) {
	p.breakers.Range(func(k, v any) bool {
		fn(k.(string), v.(*breaker).openA.Load())
		return true
	})
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
