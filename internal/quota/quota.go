// Package quota counts what each user holds of one kind at once (open
// streams, calls in flight, calls waiting on questions) against a limit:
// the caps that keep one caller from exhausting what everyone shares.
package quota

import "sync"

// PerUser counts, by user, what is held of one kind.
type PerUser struct {
	mu    sync.Mutex
	limit int
	n     map[string]int
}

// New returns a count that lets each user hold at most limit at once.
func New(limit int) *PerUser { return &PerUser{limit: limit, n: map[string]int{}} }

// Limit is the most one user may hold.
func (q *PerUser) Limit() int { return q.limit }

// Acquire takes one for user, or reports that user is at the limit.
func (q *PerUser) Acquire(user string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n[user] >= q.limit {
		return false
	}
	q.n[user]++
	return true
}

// Release gives back one that Acquire took for user.
func (q *PerUser) Release(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n[user]--; q.n[user] <= 0 {
		delete(q.n, user)
	}
}

// Held is what user holds now.
func (q *PerUser) Held(user string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[user]
}
