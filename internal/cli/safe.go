package cli

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// What the CLI prints comes from users (reasons, descriptions), clients
// (tool arguments) and upstreams (tool names, errors): text an attacker
// chooses, read by an approver deciding on it. A terminal must show what is
// there, so every such string goes through safe (one field) or safeText
// (a multi-line document) before it is printed, and --json output through
// jsonSafe:
//
//   - control characters (C0, DEL, C1 — ESC sequences rewrite the screen),
//     format characters (category Cf: the bidi embeddings, overrides,
//     isolates and marks U+202A–202E, U+2066–2069, U+200E/200F, U+061C,
//     zero-width U+200B–200D, U+2060, U+FEFF, soft hyphen, Unicode tags
//     U+E0000–E007F), line and paragraph separators (U+2028/2029),
//     variation selectors (U+FE00–FE0F, U+E0100–E01EF: invisible payloads)
//     and the invisible Hangul fillers become visible escapes (\u202e,
//     \U000e0041); invalid UTF-8 bytes become \xNN;
//   - a word mixing look-alike alphabets (Latin with Cyrillic or Greek:
//     "pаypal" with a Cyrillic а) is marked with a " [mixed-script]" suffix.
//
// Backslashes are left alone, so JSON text (tool arguments) stays readable;
// an escape that was typed rather than made by safe hides nothing.

// mixedMark is appended to a field with a word mixing confusable scripts.
const mixedMark = " [mixed-script]"

// hidden reports whether r must not reach a terminal as itself (except
// newline and tab, which the callers decide about).
func hidden(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return true
	case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs):
		return true
	case unicode.Is(unicode.Variation_Selector, r):
		return true
	case r == 0x115f || r == 0x1160 || r == 0x3164 || r == 0xffa0: // Hangul fillers: blank letters
		return true
	case r == utf8.RuneError, !unicode.IsPrint(r) && !unicode.IsSpace(r) && !unicode.IsMark(r):
		return true // unassigned and the like: show the code point
	}
	return false
}

func escapeRune(b *strings.Builder, r rune) {
	switch {
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\r':
		b.WriteString(`\r`)
	case r > 0xffff:
		fmt.Fprintf(b, `\U%08x`, r)
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// safe renders one field for the terminal: nothing hidden, nothing that
// moves the cursor (newlines and tabs escaped too), mixed scripts marked.
func safe(s string) string { return render(s, false) }

// safeText renders a multi-line text (a policy document, an error, a
// tool's text result): like safe, but newlines and tabs stay.
func safeText(s string) string { return render(s, true) }

func render(s string, keepLayout bool) string {
	clean := true
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				clean = false
				break
			}
		}
		if hidden(r) && !(keepLayout && (r == '\n' || r == '\t')) {
			clean = false
			break
		}
	}
	out := s
	if !clean {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				fmt.Fprintf(&b, `\x%02x`, s[i])
			case keepLayout && (r == '\n' || r == '\t'):
				b.WriteRune(r)
			case hidden(r):
				escapeRune(&b, r)
			default:
				b.WriteRune(r)
			}
			i += n
		}
		out = b.String()
	}
	if mixedScript(s) {
		out += mixedMark
	}
	return out
}

// confusable are the alphabets whose letters look alike; a word using two
// of them is a homograph more likely than a word of any language.
var confusable = []*unicode.RangeTable{unicode.Latin, unicode.Cyrillic, unicode.Greek, unicode.Armenian, unicode.Cherokee}

// mixedScript reports whether some word of s (a run of letters, marks and
// digits) has letters of two confusable alphabets.
func mixedScript(s string) bool {
	seen := -1 // index into confusable of the current word's alphabet; -1: none yet
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsMark(r) && !unicode.IsDigit(r) {
			seen = -1
			continue
		}
		for i, t := range confusable {
			if unicode.Is(t, r) {
				if seen >= 0 && seen != i {
					return true
				}
				seen = i
				break
			}
		}
	}
	return false
}

// jsonSafe escapes, in JSON text, every character hidden would keep off a
// terminal (other than JSON's own whitespace) as \uXXXX (surrogate pairs
// above U+FFFF): the same JSON value, with nothing invisible or
// reordering in it. Such characters can only occur inside strings, so the
// result is valid JSON whenever raw is. Invalid UTF-8 becomes \ufffd.
func jsonSafe(raw []byte) []byte {
	var b bytes.Buffer
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteRune(r)
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\ufffd`)
		case hidden(r) && r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		case hidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(raw[i : i+n])
		}
		i += n
	}
	return b.Bytes()
}
