package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// encoders are the forms an upstream may give a value in, by the
// encoding a redaction records for them.
var encoders = []struct {
	name string
	enc  string
	fn   func([]byte) string
}{
	{"raw", "raw", func(b []byte) string { return string(b) }},
	{"base64", "base64", base64.StdEncoding.EncodeToString},
	{"base64-raw", "base64", base64.RawStdEncoding.EncodeToString},
	{"base64url", "base64", base64.URLEncoding.EncodeToString},
	{"base64url-raw", "base64", base64.RawURLEncoding.EncodeToString},
	{"hex", "hex", hex.EncodeToString},
	{"HEX", "hex", func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }},
	{"HeX", "hex", func(b []byte) string { return mixedCase(hex.EncodeToString(b)) }},
	{"query", "url", func(b []byte) string { return url.QueryEscape(string(b)) }},
	{"percent-all", "url", percentAll},
	{"json-u", "json-escape", jsonU},
	{"base64-in-query", "base64", func(b []byte) string { return url.QueryEscape(base64.StdEncoding.EncodeToString(b)) }},
	{"hex-json-u", "hex", func(b []byte) string { return jsonU([]byte(hex.EncodeToString(b))) }},
	{"json-marshal", "json-escape", func(b []byte) string { s, _ := json.Marshal(string(b)); return string(s[1 : len(s)-1]) }},
}

func mixedCase(s string) string {
	b := []byte(s)
	for i := range b {
		if i%2 == 0 {
			b[i] = bytes.ToUpper(b[i : i+1])[0]
		}
	}
	return string(b)
}

// percentAll percent-encodes every byte, alternating the case of the digits.
func percentAll(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i%2 == 0 {
			fmt.Fprintf(&sb, "%%%02x", c)
		} else {
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}

// jsonU writes every character as a \u escape (surrogate pairs beyond the
// basic plane), as a JSON string's content.
func jsonU(b []byte) string {
	var sb strings.Builder
	for _, r := range string(b) {
		if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&sb, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			continue
		}
		fmt.Fprintf(&sb, `\u%04x`, r)
	}
	return sb.String()
}

// leaks returns the encodings in which out, decoded independently of the
// code under test (the standard library's decoders over every candidate
// run), still shows secret.
func leaks(out, secret string) []string {
	var got []string
	has := func(b []byte) bool { return bytes.Contains(b, []byte(secret)) }
	if strings.Contains(out, secret) {
		got = append(got, "raw")
	}
	if u, err := url.QueryUnescape(out); err == nil && strings.Contains(u, secret) {
		got = append(got, "url")
	}
	var s string
	if json.Unmarshal([]byte(`"`+strings.ReplaceAll(out, `"`, `\"`)+`"`), &s) == nil && strings.Contains(s, secret) {
		got = append(got, "json-escape")
	}
	for _, run := range strings.FieldsFunc(out, func(r rune) bool { return !strings.ContainsRune("0123456789abcdefABCDEF", r) }) {
		for off := range 2 {
			if off < len(run) {
				if b, err := hex.DecodeString(run[off : off+(len(run)-off)/2*2]); err == nil && has(b) {
					got = append(got, "hex")
				}
			}
		}
	}
	alpha := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for _, set := range []string{alpha + "+/", alpha + "-_"} {
		for _, run := range strings.FieldsFunc(out, func(r rune) bool { return !strings.ContainsRune(set, r) }) {
			for off := 0; off < 4 && off < len(run); off++ {
				r := run[off:]
				if len(r)%4 == 1 {
					r = r[:len(r)-1]
				}
				for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
					if b, err := enc.DecodeString(r); err == nil && has(b) {
						got = append(got, "base64")
					}
				}
			}
		}
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// Each value, in each encoding, after each of the three alignments a
// longer string can give it, is redacted from text and the redaction
// names the encoding; the decoded text shows it in no encoding.
func TestRedactEncodings(t *testing.T) {
	for _, secret := range []string{"canary-3f9a7c1e5b0d42", `p@ss "wörd" 1234/+?`, "ABCDEFGHIJKLMNOP"} {
		k := Known{"k": {Value: []byte(secret), Version: 3}}
		m := k.Matcher()
		for _, e := range encoders {
			for n := range 3 {
				plain := []byte(strings.Repeat("x", n) + secret + "!")
				in := "got " + e.fn(plain) + " ok"
				f := Found{}
				out := string(m.Redact([]byte(in), f))
				if l := leaks(out, secret); len(l) > 0 || !strings.Contains(out, "[REDACTED secret:k]") {
					t.Errorf("%q as %s after %d: %q (shows %v)", secret, e.name, n, out, l)
				}
				want := e.enc
				if strings.Contains(e.fn(plain), secret) { // an encoding that leaves it as it is
					want = "raw"
				}
				if red := k.Redactions(f); len(red) != 1 || red[0].Version != 3 || !slices.Contains(red[0].Encodings, want) {
					t.Errorf("%q as %s: recorded %+v", secret, e.name, red)
				}
			}
		}
	}
}

// A text without the value is returned as it is, including one full of
// hex, base64, escapes and percent signs.
func TestRedactLeavesOtherText(t *testing.T) {
	m := Known{"k": {Value: []byte("canary-3f9a7c1e5b0d42")}}.Matcher()
	for _, s := range []string{
		"plain text 100% sure",
		"sha256 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
		"dG9rZW4gb2YgYW5vdGhlciBraW5k and %41%42 and \\u0041\\n",
		`{"content":[{"type":"text","text":"hello"}]}`,
	} {
		if out := m.Redact([]byte(s), nil); string(out) != s {
			t.Errorf("%q became %q", s, out)
		}
	}
}

// Values of 4 to 7 bytes are redacted as they are and behind escapes, not
// in base64 or hex (the needles would be as short as ordinary words);
// shorter values are not redacted at all.
func TestRedactShortValues(t *testing.T) {
	k := Known{"pin": {Value: []byte("8361")}, "word": {Value: []byte("s3cr3t!")}, "two": {Value: []byte("ab")}}
	m := k.Matcher()
	in := "pin 8361, word s3cr3t%21, hex " + hex.EncodeToString([]byte("s3cr3t!")) + ", tab ab"
	out := string(m.Redact([]byte(in), nil))
	want := "pin [REDACTED secret:pin], word [REDACTED secret:word], hex " + hex.EncodeToString([]byte("s3cr3t!")) + ", tab ab"
	if out != want {
		t.Errorf("got  %q\nwant %q", out, want)
	}
}

// FuzzRedact: for any prefix and suffix and a value of 12 bytes or more
// (written in base64's own alphabet, so that no marker can spell it), no
// covered encoding of prefix+value+suffix survives Redact, in the output
// or in its decoding.
func FuzzRedact(f *testing.F) {
	f.Add([]byte("prefix "), []byte("canary3f9a7c1e5b"), []byte(" suffix"), uint8(0))
	f.Add([]byte{0, 1, 2}, []byte("ABCDEFGHIJKL"), []byte{0xff}, uint8(3))
	f.Add([]byte("%"), []byte("0123456789abcdef"), []byte("\\"), uint8(9))
	f.Fuzz(func(t *testing.T, prefix, raw, suffix []byte, which uint8) {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		if len(raw) < 12 || len(raw) > 64 || len(prefix) > 64 || len(suffix) > 64 {
			t.Skip()
		}
		secret := make([]byte, len(raw))
		for i, c := range raw {
			secret[i] = alphabet[int(c)%len(alphabet)]
		}
		e := encoders[int(which)%len(encoders)]
		in := e.fn(slices.Concat(prefix, secret, suffix))
		out := Known{"k": {Value: secret}}.Redact([]byte(in))
		if l := leaks(string(out), string(secret)); len(l) > 0 {
			t.Errorf("%s of %q+%q+%q: %q shows it (%v)", e.name, prefix, secret, suffix, out, l)
		}
	})
}
