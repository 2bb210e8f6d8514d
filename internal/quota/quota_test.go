package quota

import (
	"sync"
	"testing"
)

func TestPerUser(t *testing.T) {
	q := New(2)
	for i := range 2 {
		if !q.Acquire("alice") {
			t.Fatalf("alice could not take her #%d", i+1)
		}
	}
	if q.Acquire("alice") {
		t.Error("alice took a third")
	}
	if !q.Acquire("bob") {
		t.Error("alice's cap refused bob")
	}
	q.Release("alice")
	if q.Held("alice") != 1 || !q.Acquire("alice") {
		t.Errorf("after a release alice holds %d and cannot take one back", q.Held("alice"))
	}
	q.Release("alice")
	q.Release("alice")
	if q.Held("alice") != 0 || len(q.n) != 1 {
		t.Errorf("released users are not forgotten: %v", q.n)
	}
}

// TestPerUserRace: concurrent takers never hold more than the limit.
func TestPerUserRace(t *testing.T) {
	q := New(3)
	var mu sync.Mutex
	held, most := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 100 {
				if !q.Acquire("u") {
					continue
				}
				mu.Lock()
				held++
				most = max(most, held)
				mu.Unlock()
				mu.Lock()
				held--
				mu.Unlock()
				q.Release("u")
			}
		})
	}
	wg.Wait()
	if most > 3 || q.Held("u") != 0 {
		t.Errorf("most held at once %d (limit 3), left %d", most, q.Held("u"))
	}
}
