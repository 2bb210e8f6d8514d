package upstream

import (
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// The identity assertion each request carries (signed per request for the
// caller, never a client credential), and the random progress tokens of
// outbound calls.

// Signer signs identity assertions (assertion.Signer).
type Signer interface {
	Sign(c assertion.Claims) (string, error)
}

// assert signs the caller's identity assertion for u. If it cannot be
// signed the request is refused (a refusedError): an upstream never gets a
// request without one, which it could take for a request of nobody or of
// the gateway itself.
func (p *Pool) assert(c Caller, u spec.Upstream) (string, error) {
	tok, err := p.cfg.Signer.Sign(assertion.Claims{Subject: c.User, Audience: u.Name, Roles: c.Roles, KeyID: c.KeyID,
		Service: c.Service, Env: c.env(), RequestID: c.RequestID})
	if err != nil || tok == "" {
		p.cfg.Logger.Error("cannot sign identity assertion", "request_id", c.RequestID, "upstream", u.Name, "err", err)
		return "", &refusedError{errors.New("the caller's identity assertion cannot be signed")}
	}
	return tok, nil
}

// MetaIdentity is the _meta key carrying the identity assertion to stdio
// upstreams, which have no headers.
const MetaIdentity = "io.ostiary/identity"

// MetaTraceparent is the _meta member that carries the W3C trace context
// to a stdio upstream's tools/call.
const MetaTraceparent = "traceparent"

func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
