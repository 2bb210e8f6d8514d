package vault

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// shapes are credential formats redacted wherever they appear, known or not.
var shapes = []struct {
	re   *regexp.Regexp
	with []byte
}{
	{regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`), []byte("[REDACTED private key]")},
	{regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}`), []byte("Bearer [REDACTED]")},
	{regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{16}\b`), []byte("[REDACTED access key]")},
	{regexp.MustCompile(`ost_[a-z2-7]{16}_[a-z2-7]{52}`), []byte("[REDACTED api key]")},
}

// LooksLikeCredential reports whether s holds a well-known credential
// shape (a private key, a bearer token, a cloud access key, an Ostiary API
// key).
func LooksLikeCredential(s string) bool {
	for _, sh := range shapes {
		if sh.re.MatchString(s) {
			return true
		}
	}
	return false
}

// Redact replaces, in b (text), every known value, as it is and in each
// encoding the Matcher covers, and every well-known credential shape. (A
// JSON document is better redacted with RedactJSON, which also sees
// through its escapes, blobs and split texts.)
func (k Known) Redact(b []byte) []byte { return k.Matcher().Redact(b, nil) }

// Redact is Known.Redact with m compiled once, noting what it found in f.
func (m *Matcher) Redact(b []byte, f Found) []byte { return redactShapes(m.Text(b, f)) }

// redactShapes replaces the well-known credential shapes in b.
func redactShapes(b []byte) []byte {
	if mayHoldCredentialBytes(b) {
		for _, s := range shapes {
			b = s.re.ReplaceAll(b, s.with)
		}
	}
	return b
}

// RedactString is Redact for strings.
func (k Known) RedactString(s string) string { return string(k.Redact([]byte(s))) }

// auditShapes are the credential shapes scrubbed from audit records; group
// 1, where present, is the credential itself (what the token is made of).
var auditShapes = []*regexp.Regexp{
	regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`),
	regexp.MustCompile(`(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{16,})`),
	regexp.MustCompile(`\b(?:AKIA|ASIA)[A-Z0-9]{16}\b`),
	regexp.MustCompile(`ost_[a-z2-7]{16}_[a-z2-7]{52}`),
}

// mayHoldCredential is a cheap test that lets almost every text skip the
// regular expressions: each shape needs 20 bytes and one of these literals
// (bearer in any case). FuzzMayHoldCredential keeps it honest.
func mayHoldCredential(s string) bool {
	return len(s) >= 20 && (strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "AKIA") || strings.Contains(s, "ASIA") ||
		strings.Contains(s, "ost_") || containsBearer(s))
}

// mayHoldCredentialBytes is mayHoldCredential for bytes.
func mayHoldCredentialBytes(b []byte) bool {
	return len(b) >= 20 && (bytes.Contains(b, []byte("PRIVATE KEY")) || bytes.Contains(b, []byte("AKIA")) || bytes.Contains(b, []byte("ASIA")) ||
		bytes.Contains(b, []byte("ost_")) || containsBearer(b))
}

// containsBearer reports whether s contains "bearer" in any case.
func containsBearer[T string | []byte](s T) bool {
	const word = "bearer"
next:
	for i := 0; i+len(word) <= len(s); i++ {
		for j := range len(word) {
			if s[i+j]|0x20 != word[j] {
				continue next
			}
		}
		return true
	}
	return false
}

// ScrubAudit replaces each credential shape in s with a search token,
// "[REDACTED hmac:…]": a keyed HMAC of the credential under a key derived
// from the data key, so that an investigator holding a suspected value can
// find the records that held it (SearchToken) while the records reveal
// nothing. Before the vault is open (or on a nil Vault) the shape is
// replaced without a token.
func (v *Vault) ScrubAudit(s string) string {
	if !mayHoldCredential(s) {
		return s
	}
	key := v.searchKey()
	for _, re := range auditShapes {
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			cred := m
			if sub := re.FindStringSubmatch(m); len(sub) > 1 && sub[1] != "" {
				cred = sub[1]
			}
			tok := "[REDACTED]"
			if key != nil {
				tok = "[REDACTED " + token(key, cred) + "]"
			}
			return strings.Replace(m, cred, tok, 1)
		})
	}
	return s
}

// token is the search token of a credential under key.
func token(key []byte, cred string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(cred))
	return "hmac:" + hex.EncodeToString(m.Sum(nil)[:12])
}

// searchKey is the audit search-token key: derived from the first data
// key, not the master key, so that tokens survive a master-key rotation,
// and kept (wrapped) once that data key is retired, so that they survive
// data-key rotations too; nil before Open.
func (v *Vault) searchKey() []byte {
	if v == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.search
}
