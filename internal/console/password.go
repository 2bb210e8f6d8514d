package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters (RFC 9106 second recommended option, memory lowered to 19 MiB as
// OWASP suggests for interactive logins): about 22 ms per hash on our CI machine.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16

	// MinPasswordLen and MaxPasswordLen bound a console password; the upper bound keeps a
	// hostile sign-in form from making the server hash megabytes.
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// hashing bounds how many argon2id hashes run at once in the process: each
// holds up to 256 MiB (19 MiB with our parameters) while it runs, so a flood
// of sign-ins or password changes queues here instead of exhausting memory.
var hashing = make(chan struct{}, 2)

func idKey(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	hashing <- struct{}{}
	defer func() { <-hashing }()
	return argon2.IDKey(pw, salt, time, memory, threads, keyLen)
}

// ErrMismatch is returned when a password does not match its hash.
var ErrMismatch = errors.New("console: wrong user name or password")

// CheckPassword reports whether pw is acceptable as a new console password.
func CheckPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return fmt.Errorf("console: the password must have at least %d bytes", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("console: the password must have at most %d bytes", MaxPasswordLen)
	case strings.TrimSpace(pw) != pw:
		return errors.New("console: the password must not start or end with white space")
	}
	return nil
}

// HashPassword returns the PHC-style encoding of an argon2id hash of pw under a fresh salt:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$KEY.
func HashPassword(pw string) (string, error) {
	if err := CheckPassword(pw); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("console: salt: %w", err)
	}
	key := idKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

type params struct {
	memory  uint32
	time    uint32
	threads uint8
}

// VerifyPassword checks pw against an encoded hash in constant time. A malformed hash is an
// error distinct from ErrMismatch; parameters outside sane bounds are refused so a tampered
// row cannot make a sign-in allocate gigabytes.
func VerifyPassword(encoded, pw string) error {
	if len(pw) > MaxPasswordLen {
		return ErrMismatch
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return errors.New("console: malformed password hash")
	}
	var p params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return errors.New("console: malformed password hash parameters")
	}
	if p.memory < 8*1024 || p.memory > 256*1024 || p.time < 1 || p.time > 10 || p.threads < 1 || p.threads > 8 {
		return errors.New("console: password hash parameters out of bounds")
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return errors.New("console: malformed password hash salt")
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return errors.New("console: malformed password hash key")
	}
	got := idKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}
