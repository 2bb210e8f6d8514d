package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"
)

// CookieName is the session cookie. The __Host- prefix makes browsers refuse it unless it is
// Secure, has Path=/ and no Domain, so no sibling host or plain-http page can plant one.
const CookieName = "__Host-ostiary-console"

// ErrNoSession is returned for a missing, unknown, expired or signed-out session.
var ErrNoSession = errors.New("console: not signed in")

// Session is one signed-in console user.
type Session struct {
	User    string
	CSRF    string // per-session token every state-changing form must echo
	Created time.Time
	Seen    time.Time
}

// Sessions keeps console sessions in memory, keyed by the SHA-256 of the cookie value (a
// dump of the map does not yield usable cookies). Sessions end on sign-out, after Idle
// without a request, and after Absolute since sign-in, whichever comes first.
type Sessions struct {
	mu       sync.Mutex
	now      func() time.Time
	idle     time.Duration
	absolute time.Duration
	max      int
	byID     map[[32]byte]*Session
}

// NewSessions keeps at most max sessions; signing in beyond that evicts expired sessions
// and, failing that, is refused.
func NewSessions(now func() time.Time, idle, absolute time.Duration, max int) *Sessions {
	return &Sessions{now: now, idle: idle, absolute: absolute, max: max, byID: map[[32]byte]*Session{}}
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Create starts a session for user and returns the cookie value to set.
func (s *Sessions) Create(user string) (string, *Session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byID) >= s.max {
		s.expire(now)
		if len(s.byID) >= s.max {
			return "", nil, errors.New("console: too many sessions, try again later")
		}
	}
	sess := &Session{User: user, CSRF: csrf, Created: now, Seen: now}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess, nil
}

// Lookup returns the live session for a cookie value and marks it seen.
func (s *Sessions) Lookup(id string) (Session, error) {
	if id == "" || len(id) > 128 {
		return Session{}, ErrNoSession
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if !ok {
		return Session{}, ErrNoSession
	}
	now := s.now()
	if s.dead(sess, now) {
		delete(s.byID, key)
		return Session{}, ErrNoSession
	}
	sess.Seen = now
	return *sess, nil
}

// End signs a session out; ending an unknown session is not an error.
func (s *Sessions) End(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, key)
}

// EndUser signs out every session of user (after a password change).
func (s *Sessions) EndUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sess := range s.byID {
		if sess.User == user {
			delete(s.byID, k)
		}
	}
}

func (s *Sessions) dead(sess *Session, now time.Time) bool {
	return now.Sub(sess.Seen) >= s.idle || now.Sub(sess.Created) >= s.absolute
}

func (s *Sessions) expire(now time.Time) {
	for k, sess := range s.byID {
		if s.dead(sess, now) {
			delete(s.byID, k)
		}
	}
}

// Cookie returns the session cookie for value; maxAge < 0 deletes it.
func Cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}

// CSRFMatches compares a submitted token with the session's in constant time.
func CSRFMatches(sess Session, submitted string) bool {
	if sess.CSRF == "" || submitted == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(submitted)) == 1
}
