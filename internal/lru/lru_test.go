package lru

import "testing"

// A full map evicts the least recently used key, never more than one, and
// a key used recently survives a flood of new ones only as long as it is
// among the max most recent.
func TestMap(t *testing.T) {
	m := New[string, int](3)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("c", 3)
	m.Get("a") // a is now the most recent
	m.Put("d", 4)
	if _, ok := m.Get("b"); ok {
		t.Error("b, the least recently used, was not evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := m.Get(k); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	for i := range 1000 {
		m.GetOrAdd(string(rune('e'+i)), func() int { return i })
		if m.Len() > 3 {
			t.Fatalf("len %d", m.Len())
		}
	}
	if v := m.GetOrAdd("x", func() int { return 9 }); v != 9 {
		t.Errorf("GetOrAdd: %d", v)
	}
	m.Delete("x")
	if _, ok := m.Get("x"); ok || m.Len() != 2 {
		t.Errorf("after Delete: len %d", m.Len())
	}
	m.Clear()
	if m.Len() != 0 {
		t.Error("Clear")
	}
}
