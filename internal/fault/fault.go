// Package fault is Ostiary's one error model: a handful of kinds that every
// layer wraps its errors in, and that the HTTP surfaces map to status codes
// and safe messages.
//
// An *Error carries two texts. Message is safe to show a client; the wrapped
// Err (if any) is for the operational log only and never leaves the process.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers and renderers. The string values are
// stable: they appear in API error bodies and audit reason codes.
type Kind string

const (
	Invalid         Kind = "invalid-request"
	Unauthenticated Kind = "unauthenticated"
	Forbidden       Kind = "forbidden"
	NotFound        Kind = "not-found"
	Conflict        Kind = "conflict"
	TooLarge        Kind = "payload-too-large"
	Unavailable     Kind = "unavailable"
	Internal        Kind = "internal"
)

// Error is an error with a kind, a client-safe message and an optional cause
// that is never shown to clients.
type Error struct {
	Kind    Kind
	Op      string // operation name, for logs
	Message string // safe to show a client
	Err     error  // cause, for logs only
}

func (e *Error) Error() string {
	s := string(e.Kind)
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a client-safe message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies err as kind k under operation op. The message shown to a
// client is the generic one for k; err itself stays in the log.
func Wrap(k Kind, op string, err error) *Error {
	return &Error{Kind: k, Op: op, Err: err}
}

// KindOf reports the kind of err: the kind of the outermost *Error in its
// chain, or Internal for any other non-nil error.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// SafeMessage returns the text that may be shown to a client for err: the
// outermost *Error's Message if set, else a generic text for its kind.
// Causes are never included.
func SafeMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return generic[KindOf(err)]
}

var generic = map[Kind]string{
	Invalid:         "the request is invalid",
	Unauthenticated: "authentication required",
	Forbidden:       "permission denied",
	NotFound:        "not found",
	Conflict:        "conflict with the current state",
	TooLarge:        "request body too large",
	Unavailable:     "service unavailable; the action was not performed",
	Internal:        "internal error",
}

// StaleError says the object a change was based on has moved on (a
// reviewed change is refused, never merged): Base is the version the
// change was made against, Now the one in force.
type StaleError struct{ Base, Now string }

func (e *StaleError) Error() string {
	return fmt.Sprintf("stale: the change was based on version %s, and version %s is in force now", e.Base, e.Now)
}

// Stale returns a Conflict whose cause is a *StaleError.
func Stale(base, now string) *Error {
	e := &StaleError{Base: base, Now: now}
	return &Error{Kind: Conflict, Message: e.Error(), Err: e}
}
