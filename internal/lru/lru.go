// Package lru is a map bounded in size: when full, adding a key evicts the
// one used least recently. Wherever a client's input becomes a map key (a
// source address, a key id, a tool name), the map is one of these, so no
// client can grow memory without bound or, by filling it, reset what it
// holds for everyone else.
package lru

import (
	"container/list"
	"iter"
)

// Map is a bounded map. It is not safe for concurrent use.
type Map[K comparable, V any] struct {
	max   int
	order *list.List // front: most recently used; elements hold *entry[K, V]
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New returns a map holding at most size entries (at least 1).
func New[K comparable, V any](size int) *Map[K, V] {
	return &Map[K, V]{max: max(1, size), order: list.New(), items: map[K]*list.Element{}}
}

// Get returns the value of k and marks it used.
func (m *Map[K, V]) Get(k K) (V, bool) {
	if e, ok := m.items[k]; ok {
		m.order.MoveToFront(e)
		return e.Value.(*entry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// GetOrAdd returns the value of k, adding add() first if k is absent
// (evicting the least recently used entry when full).
func (m *Map[K, V]) GetOrAdd(k K, add func() V) V {
	if v, ok := m.Get(k); ok {
		return v
	}
	v := add()
	m.Put(k, v)
	return v
}

// Put sets the value of k and marks it used.
func (m *Map[K, V]) Put(k K, v V) {
	if e, ok := m.items[k]; ok {
		e.Value.(*entry[K, V]).val = v
		m.order.MoveToFront(e)
		return
	}
	if m.order.Len() >= m.max {
		oldest := m.order.Back()
		m.order.Remove(oldest)
		delete(m.items, oldest.Value.(*entry[K, V]).key)
	}
	m.items[k] = m.order.PushFront(&entry[K, V]{k, v})
}

// Delete removes k.
func (m *Map[K, V]) Delete(k K) {
	if e, ok := m.items[k]; ok {
		m.order.Remove(e)
		delete(m.items, k)
	}
}

// Len is the number of entries.
func (m *Map[K, V]) Len() int { return m.order.Len() }

// Clear removes every entry.
func (m *Map[K, V]) Clear() {
	m.order.Init()
	clear(m.items)
}

// All yields every entry, most recently used first, without marking any
// used. The map must not be changed during the iteration.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for e := m.order.Front(); e != nil; e = e.Next() {
			en := e.Value.(*entry[K, V])
			if !yield(en.key, en.val) {
				return
			}
		}
	}
}
