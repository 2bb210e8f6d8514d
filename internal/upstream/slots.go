package upstream

import (
	"errors"
	"fmt"
	"sync"
)

// slots are an upstream's concurrency limit, shared fairly. A call that
// finds no slot is refused at once, with a clear error, instead of queuing
// until its deadline. No user may hold more than half the slots, no one
// tool (or prompt, or resource) more than half, and no user more than a
// quarter for one tool: so one user's hung calls, or one hung tool, always
// leave room for the others, and one user cannot take a tool from everyone.
type slots struct {
	mu                   sync.Mutex
	limit, share, narrow int
	used                 int
	byUser, byWhat       map[string]int
	byUserWhat           map[[2]string]int
}

func newSlots(limit int) *slots {
	return &slots{limit: limit, share: max(1, limit/2), narrow: max(1, limit/4),
		byUser: map[string]int{}, byWhat: map[string]int{}, byUserWhat: map[[2]string]int{}}
}

// take holds a slot for user's call of what, or says why not.
func (s *slots) take(upstream, user, what string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.used >= s.limit:
		return nil, &busyError{fmt.Sprintf("upstream %s is at its concurrency limit (%d calls in flight); retry shortly", upstream, s.limit)}
	case s.byUser[user] >= s.share:
		return nil, &busyError{fmt.Sprintf("you already have %d calls in flight on upstream %s, its most for one user; retry when one ends", s.share, upstream)}
	case s.byUserWhat[[2]string{user, what}] >= s.narrow:
		return nil, &busyError{fmt.Sprintf("you already have %d calls of %s in flight on upstream %s, its most for one user; retry when one ends", s.narrow, what, upstream)}
	case s.byWhat[what] >= s.share:
		return nil, &busyError{fmt.Sprintf("%s already has %d calls in flight on upstream %s, its most for one tool; retry shortly", what, s.share, upstream)}
	}
	s.used++
	s.byUser[user]++
	s.byWhat[what]++
	s.byUserWhat[[2]string{user, what}]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.used--
		if s.byUser[user]--; s.byUser[user] == 0 {
			delete(s.byUser, user)
		}
		if s.byWhat[what]--; s.byWhat[what] == 0 {
			delete(s.byWhat, what)
		}
		if k := [2]string{user, what}; s.byUserWhat[k] <= 1 {
			delete(s.byUserWhat, k)
		} else {
			s.byUserWhat[k]--
		}
	}, nil
}

// busyError is a call refused for want of a slot: it never reached the
// upstream and says nothing of its health.
type busyError struct{ msg string }

func (e *busyError) Error() string { return e.msg }

// Busy reports whether err is a call refused for want of a slot, and its
// message.
func Busy(err error) bool {
	var b *busyError
	return errors.As(err, &b)
}
