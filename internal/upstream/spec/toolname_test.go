package spec

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// A resource's name is a display name: server-everything's "Dynamic Text
// Resource" and names in any script are accepted; text that could rewrite
// what is logged or shown around it is not.
func TestValidDisplayName(t *testing.T) {
	for _, ok := range []string{"Dynamic Text Resource", "architecture.md", "Résumé (2024) — final", "日本語の資料", "a", "fin.ledger", strings.Repeat("é", MaxDisplayName/2)} {
		if !ValidDisplayName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "ledger\x00", "ledger\nadmin approved", "tab\there", "\x1b[2Jcleared", "evil\u202etxt.exe", "zero\u200bwidth",
		"nb\u00a0space", "line\u2028sep", "bad \xff utf-8", "del\x7f", "c1\u0085", strings.Repeat("a", MaxDisplayName+1)} {
		if ValidDisplayName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzValidDisplayName(f *testing.F) {
	f.Add("Dynamic Text Resource")
	f.Add("evil\u202etxt")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidDisplayName(s) {
			return
		}
		if s == "" || len(s) > MaxDisplayName || !utf8.ValidString(s) {
			t.Fatalf("%q accepted", s)
		}
		for _, r := range s {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || (unicode.IsSpace(r) && r != ' ') {
				t.Fatalf("%q accepted with %U", s, r)
			}
		}
	})
}
