package vault

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
)

// Known is a set of secret values that must never leave Ostiary, by name.
type Known map[string][]byte

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

// Redact replaces, in b (text or JSON), every known value (as it is and as
// it appears escaped inside a JSON string) and every well-known credential
// shape. Longer values go first, so one value inside another cannot leave a
// remainder.
func (k Known) Redact(b []byte) []byte {
	names := make([]string, 0, len(k))
	for n, v := range k {
		if len(v) >= 4 { // shorter values would redact ordinary text
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return len(k[names[i]]) > len(k[names[j]]) })
	for _, n := range names {
		with := []byte("[REDACTED secret:" + n + "]")
		b = bytes.ReplaceAll(b, k[n], with)
		if esc, err := json.Marshal(string(k[n])); err == nil && len(esc) > 2 {
			b = bytes.ReplaceAll(b, esc[1:len(esc)-1], with)
		}
	}
	for _, s := range shapes {
		b = s.re.ReplaceAll(b, s.with)
	}
	return b
}

// RedactString is Redact for strings.
func (k Known) RedactString(s string) string { return string(k.Redact([]byte(s))) }
