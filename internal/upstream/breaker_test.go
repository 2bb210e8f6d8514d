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
	old := admit()                   // a slow call, begun before the trouble
	for range breakerThreshold + 3 { // one user's failures alone never open the shared circuit
		if b.done(admit(), "mallory", failing, now, time.Minute) {
			t.Fatal("one user's failures opened the circuit for everyone")
		}
	}
	b.done(admit(), "bob", healthy, now, time.Minute)
	for i := range breakerThreshold - 1 {
		b.done(admit(), []string{"alice", "bob"}[i%2], failing, now, time.Minute)
		b.done(admit(), "alice", neutral, now, time.Minute) // says nothing: does not reset
	}
	if b.failures != breakerThreshold-1 {
		t.Fatalf("failures %d: neutral outcomes reset or counted", b.failures)
	}
	if !b.done(admit(), "alice", failing, now, time.Minute) {
		t.Fatal("the circuit did not open at the threshold")
	}
	if b.done(old, "carol", healthy, now, time.Minute); !b.open {
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
	b.done(trial, "alice", healthy, now, time.Minute)
	if _, ok, _ := b.allow(now); !ok || b.failures != 0 {
		t.Error("a healthy trial did not close the circuit")
	}
}

// Slots: refused at once when full; at most half per user, half per tool,
// a quarter per user and tool, so one user cannot take a tool from others.
func TestSlotsFairShare(t *testing.T) {
	s := newSlots(8) // share 4, narrow 2
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
	for range 2 {
		if !take("mallory", "tool:gate") {
			t.Fatal("mallory's first two")
		}
	}
	if take("mallory", "tool:gate") {
		t.Error("one user took more than a quarter of the slots for one tool")
	}
	if !take("bob", "tool:gate") {
		t.Error("one user took a tool from everyone")
	}
	if !take("mallory", "tool:a") || !take("mallory", "tool:b") || take("mallory", "tool:c") {
		t.Error("the per-user half")
	}
	if !take("carol", "tool:gate") || take("dave", "tool:gate") {
		t.Error("the per-tool half")
	}
	if !take("dave", "tool:x") || !take("erin", "tool:y") || take("frank", "tool:z") {
		t.Error("a full upstream")
	}
	held[0]()
	if !take("frank", "tool:z") {
		t.Error("a released slot was not free")
	}
}
