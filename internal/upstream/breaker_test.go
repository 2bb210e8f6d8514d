package upstream

import (
	"testing"
	"time"
)

// Neutral outcomes (a cancelled caller, a refused injection, no free slot)
// neither count as failures nor reset the count; a call that began before
// the circuit opened cannot close it; only the trial call ends the trial.
func TestBreakerOutcomes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &breaker{}
	admit := func() admission {
		a, ok, _ := b.allow(now)
		if !ok {
			t.Fatal("refused while closed")
		}
		return a
	}
	old := admit() // a slow call, begun before the trouble
	for range breakerThreshold - 1 {
		b.done(admit(), failing, now, time.Minute)
		b.done(admit(), neutral, now, time.Minute) // says nothing: does not reset
	}
	if b.failures != breakerThreshold-1 {
		t.Fatalf("failures %d: neutral outcomes reset or counted", b.failures)
	}
	if !b.done(admit(), failing, now, time.Minute) {
		t.Fatal("the circuit did not open at the threshold")
	}
	if b.done(old, healthy, now, time.Minute); b.failures < breakerThreshold {
		t.Error("a call begun before the circuit opened closed it")
	}
	if _, ok, _ := b.allow(now.Add(30 * time.Second)); ok {
		t.Error("open circuit let a call through")
	}
	now = now.Add(2 * time.Minute)
	trial, ok, _ := b.allow(now)
	if !ok || !trial.trial {
		t.Fatal("no trial after the cooldown")
	}
	if _, ok, _ := b.allow(now); ok {
		t.Error("a second call during the trial")
	}
	b.done(trial, healthy, now, time.Minute)
	if _, ok, _ := b.allow(now); !ok || b.failures != 0 {
		t.Error("a healthy trial did not close the circuit")
	}
}

// Slots: refused at once when full, at most half per user and per tool.
func TestSlotsFairShare(t *testing.T) {
	s := newSlots(4)
	var held []func()
	take := func(user, what string) bool {
		rel, err := s.take("up", user, what)
		if err != nil {
			if !Busy(err) {
				t.Fatalf("not a busy error: %v", err)
			}
			return false
		}
		held = append(held, rel)
		return true
	}
	if !take("alice", "tool:hang") || !take("alice", "tool:hang") {
		t.Fatal("alice's first two")
	}
	if take("alice", "tool:other") {
		t.Error("alice took more than half")
	}
	if take("bob", "tool:hang") {
		t.Error("one tool took more than half")
	}
	if !take("bob", "tool:ok") || !take("carol", "tool:ok2") {
		t.Error("others were starved")
	}
	if take("dave", "tool:x") {
		t.Error("a full upstream took a fifth call")
	}
	held[0]()
	if !take("dave", "tool:x") {
		t.Error("a released slot was not free")
	}
}
