// Package audit is Ostiary's evidence: one record per security-relevant
// event, canonically encoded, appended to a SHA-256 hash chain, checkpointed
// with Ed25519 signatures, and verifiable offline. See DESIGN.md.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// Outcome says how an audited event ended.
type Outcome string

const (
	Success Outcome = "success" // the action was performed
	Denied  Outcome = "denied"  // authentication or authorization refused it
	Failed  Outcome = "error"   // it was invalid or could not be performed
	// UnknownAfterCrash is the outcome recovery records, at the next start,
	// for a call that was sent upstream but whose outcome never reached the
	// log (the server died or stopped before it): it may or may not have
	// taken effect.
	UnknownAfterCrash Outcome = "unknown-after-crash"
)

// Event types. Stable kebab-case: auditors query by them.
const (
	EventSystemInit   = "system-init"
	EventServerStart  = "server-start"
	EventServerStop   = "server-stop"
	EventAuthnFailure = "authn-failure"
	EventUserCreate   = "user-create"
	EventUserList     = "user-list"
	EventUserShow     = "user-show"
	EventUserDisable  = "user-disable"
	EventUserEnable   = "user-enable"
	EventRoleCreate   = "role-create"
	EventRoleList     = "role-list"
	EventKeyCreate    = "key-create"
	EventKeyList      = "key-list"
	EventKeyRevoke    = "key-revoke"
	EventAuditQuery   = "audit-query"
	EventWhoami       = "whoami"
	EventAdminRequest = "admin-request" // a request matching no admin route
)

// FormatVersion is the version of the canonical record encoding. It is part
// of every hashed record, so a future encoding cannot be confused with this one.
const FormatVersion = 1

// Record is one audit event. Detail holds event-specific facts; it must be a
// tree of strings, booleans, integers (|n| ≤ 2^53), []string, []any and
// map[string]any, and must never hold secrets or key material.
type Record struct {
	Seq       uint64
	Time      time.Time
	Event     string
	Outcome   Outcome
	Reason    string // stable reason code; empty on success
	Actor     string // user name; empty when unauthenticated
	KeyID     string // public key id used, if any
	RequestID string // correlation id
	Remote    string // client address
	Target    string // what was acted upon, e.g. "user:alice"
	Detail    map[string]any
	Prev      [32]byte // hash of the previous record; zero for the first
	Hash      [32]byte // SHA-256 of Canonical()
}

// Canonical returns the record's canonical encoding (RFC 8785 JSON over a
// fixed set of members), the exact bytes its Hash is computed over.
func (r *Record) Canonical() ([]byte, error) { return r.appendCanonical(nil) }

// appendCanonical appends the canonical encoding to dst.
func (r *Record) appendCanonical(dst []byte) ([]byte, error) {
	detail := r.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	m := map[string]any{
		"v":          FormatVersion,
		"seq":        r.Seq,
		"time":       FormatTime(r.Time),
		"event":      r.Event,
		"outcome":    string(r.Outcome),
		"reason":     r.Reason,
		"actor":      r.Actor,
		"key_id":     r.KeyID,
		"request_id": r.RequestID,
		"remote":     r.Remote,
		"target":     r.Target,
		"detail":     detail,
		"prev":       hex.EncodeToString(r.Prev[:]),
	}
	b, err := jcs.Append(dst, m)
	if err != nil {
		return nil, fmt.Errorf("audit: encode record %d: %w", r.Seq, err)
	}
	return b, nil
}

// ComputeHash returns SHA-256 over the canonical encoding.
func (r *Record) ComputeHash() ([32]byte, error) {
	b, err := r.Canonical()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// DetailJSON returns the canonical encoding of Detail, as stored.
func (r *Record) DetailJSON() (string, error) {
	if r.Detail == nil {
		return "{}", nil
	}
	b, err := jcs.Append(nil, r.Detail)
	return string(b), err
}

// ParseDetail is the inverse of DetailJSON.
func ParseDetail(s string) (map[string]any, error) {
	v, err := strictjson.Parse([]byte(s))
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("audit: detail is not an object")
	}
	return m, nil
}

// Time precision is the microsecond everywhere (SQLite and PostgreSQL alike).
func normalTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// FormatTime renders t as it appears in canonical records.
func FormatTime(t time.Time) string { return normalTime(t).Format(time.RFC3339Nano) }

// View is a record as the admin API and exports present it.
type View struct {
	Seq       uint64         `json:"seq"`
	Time      string         `json:"time"`
	Event     string         `json:"event"`
	Outcome   Outcome        `json:"outcome"`
	Reason    string         `json:"reason,omitempty"`
	Actor     string         `json:"actor,omitempty"`
	KeyID     string         `json:"key_id,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Remote    string         `json:"remote,omitempty"`
	Target    string         `json:"target,omitempty"`
	Detail    map[string]any `json:"detail"`
	Prev      string         `json:"prev"`
	Hash      string         `json:"hash"`
}

// View returns the record's presentation form.
func (r *Record) View() View {
	detail := r.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	return View{r.Seq, FormatTime(r.Time), r.Event, r.Outcome, r.Reason, r.Actor, r.KeyID,
		r.RequestID, r.Remote, r.Target, detail, hex.EncodeToString(r.Prev[:]), hex.EncodeToString(r.Hash[:])}
}
