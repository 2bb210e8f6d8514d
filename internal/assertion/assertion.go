// Package assertion mints the identity assertions with which Ostiary tells an
// upstream who a call is for: a short-lived JWT (RFC 7519) signed with
// Ed25519 (EdDSA, RFC 8037), audience-bound to one upstream, never the
// client's own credential. Upstreams verify it with the keys Ostiary
// publishes at /.well-known/jwks.json.
package assertion

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Header is the HTTP header that carries the assertion to an upstream.
const Header = "Ostiary-Identity"

// Lifetime is how long an assertion is valid.
const Lifetime = 60 * time.Second

// Issuer is the iss claim.
const Issuer = "ostiary"

// Claims is what an assertion states.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"` // user name
	Audience  string   `json:"aud"` // upstream name
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expiry    int64    `json:"exp"`
	ID        string   `json:"jti"`
	Roles     []string `json:"roles"`
	KeyID     string   `json:"key_id,omitempty"`
	Service   bool     `json:"service_account,omitempty"`
	Env       string   `json:"env,omitempty"`        // the caller's key's environment
	RequestID string   `json:"request_id,omitempty"` // correlation id
}

// Signer mints assertions.
type Signer struct {
	key  ed25519.PrivateKey
	kid  string
	head string // the encoded JWS header and its dot: the same for every assertion
	now  func() time.Time
}

// NewSigner returns a Signer using key.
func NewSigner(key ed25519.PrivateKey, now func() time.Time) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize || now == nil {
		return nil, errors.New("assertion: signer needs an Ed25519 key and a clock")
	}
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	s := &Signer{key: key, kid: hex.EncodeToString(sum[:8]), now: now}
	header, err := json.Marshal(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": s.kid})
	if err != nil {
		return nil, err
	}
	s.head = b64.EncodeToString(header) + "."
	return s, nil
}

var b64 = base64.RawURLEncoding

// Sign returns a compact JWS for c with iss, iat, nbf, exp and jti filled in.
func (s *Signer) Sign(c Claims) (string, error) {
	now := s.now()
	c.Issuer, c.IssuedAt, c.NotBefore, c.Expiry = Issuer, now.Unix(), now.Unix(), now.Add(Lifetime).Unix()
	var jti [12]byte
	rand.Read(jti[:])
	c.ID = b64.EncodeToString(jti[:])
	if c.Roles == nil {
		c.Roles = []string{}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sigLen := b64.EncodedLen(ed25519.SignatureSize)
	b := make([]byte, 0, len(s.head)+b64.EncodedLen(len(payload))+1+sigLen)
	b = append(b, s.head...)
	b = b64.AppendEncode(b, payload)
	sig := ed25519.Sign(s.key, b)
	b = append(b, '.')
	return string(b64.AppendEncode(b, sig)), nil
}

// JWKS returns the JSON Web Key Set (RFC 7517) with the public key.
func (s *Signer) JWKS() []byte {
	pub := s.key.Public().(ed25519.PublicKey)
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": s.kid, "x": b64.EncodeToString(pub),
	}}})
	return b
}

// Verify checks an assertion against pub for the given audience at now and
// returns its claims. Upstreams written in Go can use it; it is also what
// the tests use to prove what upstreams receive.
func Verify(token string, pub ed25519.PublicKey, audience string, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("assertion: not a compact JWS")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil || header.Alg != "EdDSA" {
		return c, errors.New("assertion: bad header")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return c, errors.New("assertion: bad signature")
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(pb, &c) != nil {
		return c, errors.New("assertion: bad payload")
	}
	switch {
	case c.Issuer != Issuer:
		return c, fmt.Errorf("assertion: issuer %q", c.Issuer)
	case c.Audience != audience:
		return c, fmt.Errorf("assertion: audience %q, want %q", c.Audience, audience)
	case now.Unix() < c.NotBefore || now.Unix() >= c.Expiry:
		return c, errors.New("assertion: expired or not yet valid")
	}
	return c, nil
}
