package vault

import (
	"strings"
	"testing"
)

// Every credential shape is redacted whatever its case, and the cheap
// pre-test never lets one through.
func TestRedactShapes(t *testing.T) {
	for _, c := range []string{
		"Authorization: Bearer abcdefghijklmnop1234",
		"authorization: bEaReR abcdefghijklmnop1234",
		"key AKIAABCDEFGHIJKLMNOP here",
		"ost_abcdefghijklmnop_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
	} {
		if !LooksLikeCredential(c) {
			t.Fatalf("%q is not a credential shape", c)
		}
		out := string(Known{}.Redact([]byte(c)))
		if !strings.Contains(out, "[REDACTED") || LooksLikeCredential(out) {
			t.Errorf("Redact(%q) = %q", c, out)
		}
		if out := (*Vault)(nil).ScrubAudit(c); !strings.Contains(out, "[REDACTED") || LooksLikeCredential(out) {
			t.Errorf("ScrubAudit(%q) = %q", c, out)
		}
	}
	const plain = `{"content":[{"type":"text","text":"the bearer of good news"}]}`
	if out := string(Known{}.Redact([]byte(plain))); out != plain {
		t.Errorf("plain text changed: %q", out)
	}
}

// FuzzMayHoldCredential: whatever a shape matches, the pre-test admits.
func FuzzMayHoldCredential(f *testing.F) {
	f.Add("BeArEr abcdefghijklmnop1234")
	f.Add("x AKIAABCDEFGHIJKLMNOP")
	f.Add("-----BEGIN PRIVATE KEY-----a-----END PRIVATE KEY-----")
	f.Fuzz(func(t *testing.T, s string) {
		if LooksLikeCredential(s) && (!mayHoldCredential(s) || !mayHoldCredentialBytes([]byte(s))) {
			t.Errorf("pre-test misses a credential in %q", s)
		}
	})
}
