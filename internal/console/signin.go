package console

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Hashes gives the stored argon2id hash of a console account; ok is false for a name with no
// console password (unknown, disabled or never set).
type Hashes interface {
	ConsolePasswordHash(ctx context.Context, name string) (hash string, ok bool, err error)
}

// ErrLocked is returned while a name is locked out; the message says when to retry, never
// whether the name exists.
type ErrLocked struct{ Wait time.Duration }

func (e ErrLocked) Error() string {
	return fmt.Sprintf("console: too many failed sign-ins; try again in %s", e.Wait.Round(time.Second))
}

// SignIn checks console credentials with a lock-out. A name without a password costs the
// same argon2id work as a real one (against a hash made once at start), so timing does not
// tell which names exist, and both fail with ErrMismatch.
type SignIn struct {
	hashes  Hashes
	lockout *Lockout

	dummyOnce sync.Once
	dummy     string
}

// NewSignIn checks passwords from hashes, counting failures in lockout.
func NewSignIn(hashes Hashes, lockout *Lockout) *SignIn {
	return &SignIn{hashes: hashes, lockout: lockout}
}

func (s *SignIn) dummyHash() string {
	s.dummyOnce.Do(func() {
		tok, err := randomToken()
		if err == nil {
			s.dummy, _ = HashPassword(tok)
		}
	})
	return s.dummy
}

// Check returns nil if name and pw are right and the name is not locked out.
func (s *SignIn) Check(ctx context.Context, name, pw string) error {
	if name == "" || len(name) > 128 {
		return ErrMismatch
	}
	if ok, wait := s.lockout.Allowed(name); !ok {
		return ErrLocked{Wait: wait}
	}
	hash, ok, err := s.hashes.ConsolePasswordHash(ctx, name)
	if err != nil {
		return fmt.Errorf("console: sign-in unavailable: %w", err)
	}
	if !ok {
		hash = s.dummyHash()
	}
	// A malformed stored hash fails closed and counts like a wrong password.
	if VerifyPassword(hash, pw) == nil && ok {
		s.lockout.Succeed(name)
		return nil
	}
	s.lockout.Fail(name)
	return ErrMismatch
}
