// Package identity manages who may call Ostiary: users (humans and service
// accounts), roles (sets of grants) and API keys. Every change is authorized
// here, applied in the same transaction as its audit record, and invalidates
// the authenticator's cache before it is acknowledged.
package identity

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authz"
)

// User is a human or a service account.
type User struct {
	Name      string    `json:"name"`
	Service   bool      `json:"service"`
	Owner     string    `json:"owner,omitempty"` // a service account's owning human
	Disabled  bool      `json:"disabled"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// Role is a named set of grants.
type Role struct {
	Name      string       `json:"name"`
	Grants    authz.Grants `json:"-"`
	Builtin   bool         `json:"builtin"`
	CreatedAt time.Time    `json:"created_at"`
}

// Key is an API key's stored form: never its secret.
type Key struct {
	ID          string       `json:"id"`
	User        string       `json:"user"`
	Hash        []byte       `json:"-"`
	Scope       authz.Grants `json:"-"` // nil: unscoped
	Environment string       `json:"environment"`
	CreatedAt   time.Time    `json:"created_at"`
	CreatedBy   string       `json:"created_by"`
	ExpiresAt   time.Time    `json:"-"` // zero: never
	RevokedAt   time.Time    `json:"-"`
	LastUsedAt  time.Time    `json:"-"`
}

// Built-in roles, created by Bootstrap.
const (
	RoleAdmin   = "admin"
	RoleAuditor = "auditor"
)

// BuiltinRoles returns the roles every installation has.
func BuiltinRoles() []Role {
	return []Role{
		{Name: RoleAdmin, Grants: authz.Grants{{Action: authz.Admin, Resource: authz.All}}, Builtin: true},
		{Name: RoleAuditor, Grants: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}, Builtin: true},
	}
}

// Reader is the read side of the store.
type Reader interface {
	UserByName(ctx context.Context, name string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	RoleByName(ctx context.Context, name string) (Role, error)
	ListRoles(ctx context.Context) ([]Role, error)
	KeyByID(ctx context.Context, id string) (Key, error)
	ListKeys(ctx context.Context, user string) ([]Key, error)
}

// TxStore is the write side, used inside an audit transaction. The
// audit.Tx handed to an Apply function implements it.
type TxStore interface {
	Reader
	InsertUser(ctx context.Context, u User) error
	SetUserDisabled(ctx context.Context, name string, disabled bool) error
	// SetUserRoles replaces the user's roles (fault.NotFound for a user or
	// a role that does not exist).
	SetUserRoles(ctx context.Context, name string, roles []string) error
	InsertRole(ctx context.Context, r Role) error
	InsertKey(ctx context.Context, k Key) error
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// CountAdminKeys counts usable keys that carry admin:*: unrevoked,
	// unexpired at now, of an enabled user holding admin:*.
	CountAdminKeys(ctx context.Context, now time.Time) (int, error)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName checks a user or role name.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use 1–63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", kind, clip(name))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// txStore recovers the domain view of a batch transaction.
func txStore(tx audit.Tx) (TxStore, error) {
	ts, ok := tx.(TxStore)
	if !ok {
		return nil, fmt.Errorf("identity: store transaction %T lacks identity operations", tx)
	}
	return ts, nil
}
