package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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
	// What the session's tools/call needs of the SDK (legacy.go): its
	// server session as the SDK's handlers saw it, whether it set a log
	// level, and when the SDK last finished a request of it.
	ss      *mcp.ServerSession
	logs    bool
	sdkDone time.Time
}

func (b *bindings) bind(sessionID, keyID, user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= 10000 {
		b.pruneLocked()
	}
	b.m[sessionID] = binding{keyID: keyID, user: user, last: b.now()}
}

// count is how many sessions are open (used within the idle timeout).
func (b *bindings) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	cutoff, n := b.now().Add(-b.idle), 0
	for _, e := range b.m {
		if e.last.After(cutoff) {
			n++
		}
	}
	return n
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

// check reports whether sessionID belongs to keyID, refreshing it, and
// returns its binding.
func (b *bindings) check(sessionID, keyID string) (binding, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[sessionID]
	if !ok || e.keyID != keyID {
		return binding{}, false
	}
	e.last = b.now()
	b.m[sessionID] = e
	return e, true
}

// sawSDK notes the server session of a bound session id, as the SDK's
// handlers see it, and whether method sets its log level.
func (b *bindings) sawSDK(sessionID string, ss *mcp.ServerSession, method string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[sessionID]
	if !ok {
		return
	}
	e.ss = ss
	e.logs = e.logs || method == "logging/setLevel"
	b.m[sessionID] = e
}

// sdkEnded notes that the SDK finished a request of sessionID (which
// restarts the SDK's idle timer of the session).
func (b *bindings) sdkEnded(sessionID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.m[sessionID]; ok {
		e.sdkDone = b.now()
		b.m[sessionID] = e
	}
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
