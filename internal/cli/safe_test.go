package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/approval"
)

// Every character that hides, reorders or rewrites what an approver reads
// is shown as an escape; look-alike alphabets in one word are marked.
func TestSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"pay ACME 120", "pay ACME 120"},
		{"Zoë, 東京, Ελλάδα, Москва", "Zoë, 東京, Ελλάδα, Москва"}, // one alphabet per word: not marked
		{"evil\x1b[2Jclear", `evil\u001b[2Jclear`},
		{"a\nb\tc\rd", `a\nb\tc\rd`},
		{"del\x7f c1\u0085\u009b", `del\u007f c1\u0085\u009b`},
		{"amount: 100\u202e00001", `amount: 100\u202e00001`}, // right-to-left override
		{"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", `\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"zero\u200bwidth\u200c\u200d\ufeff\u2060", `zero\u200bwidth\u200c\u200d\ufeff\u2060`},
		{"tag\U000E0041\U000E007F", `tag\U000e0041\U000e007f`},
		{"vs\ufe0f\U000E0100", `vs\ufe0f\U000e0100`},
		{"blank\u3164", `blank\u3164`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"p\u0430ypal.com", "p\u0430ypal.com" + mixedMark},    // Cyrillic а in a Latin word
		{"\u03bfpenai", "\u03bfpenai" + mixedMark},            // Greek ο
		{"ACME \u0410\u0421\u041c\u0415", "ACME АСМЕ"},        // two words, one alphabet each
		{"x\u202e\u0430b", `x\u202e` + "\u0430b" + mixedMark}, // both at once
	} {
		if got := safe(c.in); got != c.want {
			t.Errorf("safe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := safeText("rule:\n\twhen: x\u202e\x1b"); got != "rule:\n\twhen: x\\u202e\\u001b" {
		t.Errorf("safeText: %q", got)
	}
}

// JSON output stays the same JSON value, with bidi, invisible and control
// characters written as \u escapes (json.Marshal leaves bidi raw).
func TestJSONSafe(t *testing.T) {
	in := map[string]string{"reason": "ok\u202e\u2066 \U000E0041\u0085\u200b\u2028", "name": "Zoë"}
	raw, _ := json.Marshal(in)
	out := jsonSafe(raw)
	for _, r := range string(out) {
		if r > 0x7e && r != 'ë' {
			t.Fatalf("raw %U left in %s", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["reason"] != in["reason"] || back["name"] != "Zoë" {
		t.Errorf("not the same value: %s %v", out, err)
	}
	if !strings.Contains(string(out), `\u202e\u2066 \udb40\udc41\u0085\u200b\u2028`) {
		t.Errorf("escapes: %s", out)
	}
}

// approvals show restores the canonical arguments the digest covers, and
// says so only when the digest and length match them.
func TestCanonicalArgs(t *testing.T) {
	canon := `{"a":"<b>","n":1}`
	sum := sha256.Sum256([]byte(canon))
	a := approval.Approval{Args: json.RawMessage(`{"n":1,"a":"\u003cb\u003e"}`), ArgsSHA256: hex.EncodeToString(sum[:]), ArgsBytes: len(canon)}
	if got, check := canonicalArgs(a); got != canon || check != "matches the arguments shown" {
		t.Errorf("%s: %s", got, check)
	}
	a.ArgsBytes++
	if _, check := canonicalArgs(a); !strings.HasPrefix(check, "WARNING") {
		t.Errorf("a wrong length passed: %s", check)
	}
	a.ArgsBytes, a.Args = len(canon), json.RawMessage(`{"a":"<b>","n":2}`)
	if _, check := canonicalArgs(a); !strings.HasPrefix(check, "WARNING") {
		t.Errorf("other arguments passed: %s", check)
	}
}
