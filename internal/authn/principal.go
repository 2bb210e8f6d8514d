package authn

import (
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Principal is the authenticated caller of one request.
type Principal struct {
	User    string
	Service bool     // a service account rather than a human
	Owner   string   // a service account's owning human, if named
	Roles   []string // role names, for display and audit
	KeyID   string   // an API key's id, or TokenKeyID(Issuer, Subject) for a token
	Issuer  string   // the identity provider, for a token
	Subject string   // the token's subject at Issuer
	// Token is the access token itself and TokenExpires its expiry (a
	// token principal only): an upstream that exchanges it (RFC 8693)
	// gets a token of its own, never this one.
	Token        HeldToken
	TokenExpires time.Time
	Environment  string // the key's environment: which secret values its calls get
	Perms        authz.Permissions
	RequestID    string // correlation id
	Traceparent  string // the client's W3C traceparent, if well-formed
	Remote       string // client address
	Legacy       bool   // the request speaks a 2025 protocol revision (sessions), not 2026-07-28
}

// DefaultEnvironment is the environment of keys and secrets created without
// naming one, and of everything that existed before environments did.
const DefaultEnvironment = "default"

var envRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidEnvironment reports whether name can name an environment: 1–32
// lower-case letters, digits and '-', starting with a letter ("prod").
func ValidEnvironment(name string) bool { return envRE.MatchString(name) }

// Allows reports whether the principal may perform action on resource.
func (p *Principal) Allows(a authz.Action, resource string) bool { return p.Perms.Allows(a, resource) }

// Record starts an audit record of event on target, attributed to p.
func (p *Principal) Record(event, target string) audit.Record {
	return audit.Record{Event: event, Outcome: audit.Success, Actor: p.User, KeyID: p.KeyID,
		RequestID: p.RequestID, Remote: p.Remote, Target: target}
}

// Attempt is what the record of a request refused before or at
// authentication says of it: the client's address (whose budget the
// FailureGuard charges, see Source), the method, the path and the
// correlation id.
type Attempt struct {
	Remote, Method, Path, RequestID string
}

// FailureRecord is the audit record of a failed authentication of a: the
// reason and the key id (never the secret) for a *Failure, the fault kind
// for anything else (the credential store being unavailable).
func FailureRecord(err error, a Attempt) audit.Record {
	path := a.Path
	if len(path) > 200 {
		path = path[:200]
	}
	rec := audit.Record{Event: audit.EventAuthnFailure, Outcome: audit.Denied, RequestID: a.RequestID, Remote: a.Remote,
		Detail: map[string]any{"method": strings.ToValidUTF8(a.Method, "?"), "path": strings.ToValidUTF8(path, "?")}}
	var f *Failure
	if errors.As(err, &f) {
		rec.Reason, rec.KeyID = f.Reason, f.KeyID
		if f.User != "" {
			rec.Target = "user:" + f.User
		}
	} else {
		rec.Outcome, rec.Reason = audit.Failed, string(fault.KindOf(err))
	}
	return rec
}

// HeldToken is a bearer credential held for one request: a caller's
// access token, kept so that it can be exchanged for an upstream's (RFC
// 8693). It never prints, logs or marshals as itself.
type HeldToken string

const credentialMask = "[credential]"

func (HeldToken) String() string               { return credentialMask }
func (HeldToken) GoString() string             { return credentialMask }
func (HeldToken) LogValue() slog.Value         { return slog.StringValue(credentialMask) }
func (HeldToken) MarshalJSON() ([]byte, error) { return []byte(`"` + credentialMask + `"`), nil }
