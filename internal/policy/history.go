package policy

import (
	"maps"
	"sync"
	"time"
)

// MaxWindow bounds session.window, and how long History remembers.
const MaxWindow = 24 * time.Hour

// History remembers, per user, when they last touched each data class (a
// call to a tool of that class that ran). It is the "session" a policy
// sees: a user's recent activity across all their sessions and keys, so
// that reconnecting or switching keys does not wash a taint away. It is in
// memory: a restart forgets it (and errs towards fewer holds for at most
// one window).
type History struct {
	mu sync.Mutex
	m  map[string]map[string]time.Time
}

// NewHistory returns an empty History.
func NewHistory() *History { return &History{m: map[string]map[string]time.Time{}} }

// Touch records that user touched classes at t.
func (h *History) Touch(user string, classes []string, t time.Time) {
	if len(classes) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.m[user]
	if m == nil {
		m = map[string]time.Time{}
		h.m[user] = m
	}
	for _, c := range classes {
		if t.After(m[c]) {
			m[c] = t
		}
	}
	for c, at := range m { // a user's classes are few: prune as we go
		if t.Sub(at) > MaxWindow {
			delete(m, c)
		}
	}
}

// Of returns what user touched within MaxWindow of now.
func (h *History) Of(user string, now time.Time) map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := maps.Clone(h.m[user])
	for c, at := range out {
		if now.Sub(at) > MaxWindow {
			delete(out, c)
		}
	}
	return out
}

// Classes are the data classes a call to t touches.
func (t Tool) Classes() []string { return t.effective().DataClasses }
