package console

import (
	"context"
	"errors"
	"testing"
	"time"
)

type mapHashes map[string]string

func (m mapHashes) ConsolePasswordHash(_ context.Context, name string) (string, bool, error) {
	h, ok := m[name]
	return h, ok, nil
}

type brokenHashes struct{}

func (brokenHashes) ConsolePasswordHash(context.Context, string) (string, bool, error) {
	return "", false, errors.New("database is locked")
}

func TestSignInLockOut(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("alice password 1")
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := NewSignIn(mapHashes{"alice": h}, NewLockout(c.now, 3, 10*time.Minute, 15*time.Minute, 100))
	ctx := context.Background()
	if err := s.Check(ctx, "alice", "alice password 1"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for range 3 {
		if err := s.Check(ctx, "alice", "guess guess guess"); !errors.Is(err, ErrMismatch) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	var locked ErrLocked
	if err := s.Check(ctx, "alice", "alice password 1"); !errors.As(err, &locked) {
		t.Fatalf("right password while locked: %v", err)
	}
	c.add(15 * time.Minute)
	if err := s.Check(ctx, "alice", "alice password 1"); err != nil {
		t.Fatalf("after lock-out: %v", err)
	}
	// Unknown names fail the same way and are locked the same way.
	for range 3 {
		if err := s.Check(ctx, "mallory", "alice password 1"); !errors.Is(err, ErrMismatch) {
			t.Fatalf("unknown name: %v", err)
		}
	}
	if err := s.Check(ctx, "mallory", "x"); !errors.As(err, &locked) {
		t.Fatalf("unknown name not locked: %v", err)
	}
	if err := s.Check(ctx, "", ""); !errors.Is(err, ErrMismatch) {
		t.Fatal("empty name")
	}
}

func TestSignInTamperedHashFailsClosed(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s := NewSignIn(mapHashes{"bob": "plaintext"}, NewLockout(c.now, 3, time.Minute, time.Minute, 10))
	if err := s.Check(context.Background(), "bob", "plaintext"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("tampered hash: %v", err)
	}
	s = NewSignIn(brokenHashes{}, NewLockout(c.now, 3, time.Minute, time.Minute, 10))
	if err := s.Check(context.Background(), "bob", "x"); err == nil || errors.Is(err, ErrMismatch) {
		t.Fatalf("store error: %v", err)
	}
}
