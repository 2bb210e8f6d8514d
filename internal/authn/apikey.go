// Package authn establishes who is calling: it parses and verifies API keys
// and turns a verified key into a Principal. See DESIGN.md.
package authn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// API key format: ost_<keyid>_<secret>
//
//	keyid  16 characters of lowercase base32 (80 random bits): public, the
//	       key's name in listings, logs and audit records
//	secret 52 characters of lowercase base32 (256 random bits): shown once,
//	       stored only as HMAC-SHA256 under the server's key-hashing key
const (
	keyPrefix = "ost_"
	idLen     = 16
	secretLen = 52
	// KeyLen is the length of a whole API key.
	KeyLen = len(keyPrefix) + idLen + 1 + secretLen
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformed is returned for anything that is not an API key.
var ErrMalformed = errors.New("malformed API key")

// NewKey returns a fresh key id and the whole key text.
func NewKey() (id, key string) {
	var idb [10]byte    // 80 bits → 16 characters
	var secret [32]byte // 256 bits → 52 characters
	rand.Read(idb[:])
	rand.Read(secret[:])
	id = b32.EncodeToString(idb[:])
	return id, keyPrefix + id + "_" + b32.EncodeToString(secret[:])
}

// ParseKey splits a key into its id and secret, refusing anything that is not
// exactly of the documented shape.
func ParseKey(key string) (id, secret string, err error) {
	if len(key) != KeyLen || !strings.HasPrefix(key, keyPrefix) || key[len(keyPrefix)+idLen] != '_' {
		return "", "", ErrMalformed
	}
	id = key[len(keyPrefix) : len(keyPrefix)+idLen]
	secret = key[len(keyPrefix)+idLen+1:]
	if !ValidKeyID(id) || !isB32(secret) {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// ValidKeyID reports whether s has the shape of a key id.
func ValidKeyID(s string) bool { return len(s) == idLen && isB32(s) }

func isB32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Hasher computes the stored form of a key: HMAC-SHA256 under a server-held
// key, so a copy of the database alone does not let anyone test guesses.
type Hasher struct{ key []byte }

// NewHasher returns a Hasher for the given key (at least 32 bytes).
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < 32 {
		return nil, errors.New("authn: key-hashing key must be at least 32 bytes")
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// Hash returns the stored form of the key with this id and secret.
func (h *Hasher) Hash(id, secret string) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("ostiary-api-key-v1\x00"))
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// Verify reports, in constant time, whether id and secret match stored.
func (h *Hasher) Verify(id, secret string, stored []byte) bool {
	return hmac.Equal(h.Hash(id, secret), stored)
}
