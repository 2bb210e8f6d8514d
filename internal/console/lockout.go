package console

import (
	"sync"
	"time"
)

// Lockout counts wrong passwords per account name and locks the name out for a while after
// too many. It is keyed by the name typed into the form (existing or not), so probing
// unknown names costs the same as probing real ones. The clock is injected.
type Lockout struct {
	mu       sync.Mutex
	now      func() time.Time
	max      int
	window   time.Duration
	lockFor  time.Duration
	maxNames int
	entries  map[string]*lockEntry
}

type lockEntry struct {
	failures    int
	first       time.Time
	lockedUntil time.Time
}

// NewLockout allows max wrong passwords per name within window, then refuses the name for
// lockFor. At most maxNames names are tracked; beyond that, new names are refused until
// entries expire (fail closed under a name-spraying flood).
func NewLockout(now func() time.Time, max int, window, lockFor time.Duration, maxNames int) *Lockout {
	return &Lockout{now: now, max: max, window: window, lockFor: lockFor, maxNames: maxNames, entries: map[string]*lockEntry{}}
}

// Allowed reports whether a sign-in for name may be attempted now, and if not, how long
// until it may.
func (l *Lockout) Allowed(name string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e, ok := l.entries[name]
	if !ok {
		if len(l.entries) >= l.maxNames {
			l.expire(now)
			if len(l.entries) >= l.maxNames {
				return false, l.window
			}
		}
		return true, 0
	}
	if now.Before(e.lockedUntil) {
		return false, e.lockedUntil.Sub(now)
	}
	return true, 0
}

// Fail records a wrong password for name; it reports whether the name is now locked.
func (l *Lockout) Fail(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e, ok := l.entries[name]
	if !ok || (now.Sub(e.first) > l.window && !now.Before(e.lockedUntil)) {
		if !ok && len(l.entries) >= l.maxNames {
			l.expire(now)
		}
		e = &lockEntry{first: now}
		l.entries[name] = e
	}
	e.failures++
	if e.failures >= l.max {
		e.lockedUntil = now.Add(l.lockFor)
		e.failures = 0
		e.first = now
		return true
	}
	return false
}

// Succeed clears the failures of name after a correct password.
func (l *Lockout) Succeed(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, name)
}

func (l *Lockout) expire(now time.Time) {
	for k, e := range l.entries {
		if now.Sub(e.first) > l.window && !now.Before(e.lockedUntil) {
			delete(l.entries, k)
		}
	}
}
