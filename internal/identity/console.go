package identity

import (
	"context"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/console"
	"github.com/ostiary/ostiary/internal/fault"
)

// EventConsolePassword records that a user's console password was set; the record names the
// user, never the password or its hash.
const EventConsolePassword = "user-console-password-set"

// ConsolePasswords is the write side of console passwords, offered by the store's
// transaction.
type ConsolePasswords interface {
	SetConsolePassword(ctx context.Context, name, hash, by string, at time.Time) error
}

// SetConsolePassword sets the password a human user signs in to the web console with. A
// password lets whoever knows it act as the user, so the caller must hold every grant the
// user holds (as for disabling them); service accounts have no console password.
func (s *Service) SetConsolePassword(ctx context.Context, p *authn.Principal, name, password string) error {
	rec := p.Record(EventConsolePassword, target("user", name))
	// The grant is checked before the hash: argon2id costs ~20 ms and
	// 19 MiB, which a key without manage-identities must not be able to
	// make the server spend.
	if err := s.guard(ctx, p, rec, authz.ManageIdentities); err != nil {
		return err
	}
	if err := console.CheckPassword(password); err != nil {
		return fault.New(fault.Invalid, "%s", err.Error())
	}
	// Hash outside the transaction: argon2id takes tens of milliseconds.
	hash, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	return s.mutate(ctx, p, rec, func(ctx context.Context, tx TxStore, r *audit.Record) error {
		u, err := tx.UserByName(ctx, name)
		if err != nil {
			return err
		}
		if u.Service {
			return fault.New(fault.Invalid, "%s is a service account: service accounts use API keys, not console passwords", name)
		}
		gs, err := grantsOf(ctx, tx, u.Roles)
		if err != nil {
			return err
		}
		if err := mayHandOut(p, gs, "setting the console password of "+name); err != nil {
			return err
		}
		cp, ok := tx.(ConsolePasswords)
		if !ok {
			return fault.New(fault.Unavailable, "this store does not keep console passwords")
		}
		return cp.SetConsolePassword(ctx, name, hash, p.User, s.now())
	})
}
