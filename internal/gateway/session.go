package gateway

import (
	"net/http"
	"sync"
	"time"
)

// bindings ties each legacy session id to the API key that created it. A
// session id presented with any other key, or after its key can no longer
// authenticate, is answered exactly like an unknown session: a session id
// is never a credential.
type bindings struct {
	mu   sync.Mutex
	m    map[string]binding
	idle time.Duration
	now  func() time.Time
}

type binding struct {
	keyID, user string
	last        time.Time
}

func (b *bindings) bind(sessionID, keyID, user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= 10000 {
		b.pruneLocked()
	}
	b.m[sessionID] = binding{keyID: keyID, user: user, last: b.now()}
}

// held counts user's sessions that are still open (used within the SDK's
// idle timeout, which closes the others).
func (b *bindings) held(user string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	cutoff, n := b.now().Add(-b.idle), 0
	for _, e := range b.m {
		if e.user == user && e.last.After(cutoff) {
			n++
		}
	}
	return n
}

// check reports whether sessionID belongs to keyID, refreshing it.
func (b *bindings) check(sessionID, keyID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[sessionID]
	if !ok || e.keyID != keyID {
		return false
	}
	e.last = b.now()
	b.m[sessionID] = e
	return true
}

func (b *bindings) unbind(sessionID string) {
	b.mu.Lock()
	delete(b.m, sessionID)
	b.mu.Unlock()
}

// pruneLocked forgets sessions idle for twice the SDK's session timeout
// (the SDK has closed them by then).
func (b *bindings) pruneLocked() {
	cutoff := b.now().Add(-2 * b.idle)
	for id, e := range b.m {
		if e.last.Before(cutoff) {
			delete(b.m, id)
		}
	}
}

// unknownSession answers exactly as the SDK does for a session id it does
// not know.
func unknownSession(w http.ResponseWriter) {
	http.Error(w, "session not found", http.StatusNotFound)
}

// captureSession records the session id the SDK assigns in its response.
type captureSession struct {
	http.ResponseWriter
	onID func(id string)
	done bool
}

func (c *captureSession) WriteHeader(code int) {
	if !c.done {
		c.done = true
		if id := c.Header().Get("Mcp-Session-Id"); id != "" && code < 300 {
			c.onID(id)
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureSession) Write(b []byte) (int, error) {
	if !c.done {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

func (c *captureSession) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *captureSession) Unwrap() http.ResponseWriter { return c.ResponseWriter }
