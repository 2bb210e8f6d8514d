package adminapi

import (
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/identity"
)

// Wire types of /api/v1: what the server writes and the CLI reads.

// ErrorBody is every error response.
type ErrorBody struct {
	Error     ErrorDetail `json:"error"`
	RequestID string      `json:"request_id"`
}

// ErrorDetail carries a stable code (a fault kind) and a safe message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Whoami describes the caller.
type Whoami struct {
	User    string   `json:"user"`
	Service bool     `json:"service"`
	Roles   []string `json:"roles"`
	KeyID   string   `json:"key_id"`
	Grants  []string `json:"grants"`
	Scope   []string `json:"scope,omitempty"`
	// Environment is the key's environment.
	Environment string `json:"environment"`
	// Issuer and Subject name the identity provider's token, if one was used.
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// UserView is a user.
type UserView = identity.User

// UserList is GET /users.
type UserList struct {
	Users []UserView `json:"users"`
}

// RoleView is a role with its grants as texts.
type RoleView struct {
	Name      string    `json:"name"`
	Grants    []string  `json:"grants"`
	Builtin   bool      `json:"builtin"`
	CreatedAt time.Time `json:"created_at"`
}

// RoleList is GET /roles.
type RoleList struct {
	Roles []RoleView `json:"roles"`
}

// KeyView is a key as listed: never its secret or hash.
type KeyView struct {
	ID          string     `json:"id"`
	User        string     `json:"user"`
	Status      string     `json:"status"` // active, expired or revoked
	Scope       []string   `json:"scope"`  // null: unscoped
	Environment string     `json:"environment"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

// KeyList is GET /keys.
type KeyList struct {
	Keys []KeyView `json:"keys"`
}

// CreatedKey is POST /keys: the key text appears here and nowhere else.
type CreatedKey struct {
	Key    KeyView `json:"key"`
	APIKey string  `json:"api_key"`
}

// AuditPage is GET /audit: newest first; NextBeforeSeq pages further back.
type AuditPage struct {
	Records       []audit.View `json:"records"`
	NextBeforeSeq uint64       `json:"next_before_seq,omitempty"`
	// IndexLag is how many records logged before the query the index did
	// not hold yet when it answered (it is filled behind the log).
	IndexLag uint64 `json:"index_lag,omitempty"`
}

func keyView(k identity.Key, now time.Time) KeyView {
	v := KeyView{ID: k.ID, User: k.User, Status: "active", Environment: k.Environment, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy,
		ExpiresAt: opt(k.ExpiresAt), RevokedAt: opt(k.RevokedAt), LastUsedAt: opt(k.LastUsedAt)}
	if k.Scope != nil {
		v.Scope = k.Scope.Strings()
	}
	switch {
	case !k.RevokedAt.IsZero():
		v.Status = "revoked"
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		v.Status = "expired"
	}
	return v
}

func roleView(r identity.Role) RoleView {
	return RoleView{Name: r.Name, Grants: r.Grants.Strings(), Builtin: r.Builtin, CreatedAt: r.CreatedAt}
}

func opt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
