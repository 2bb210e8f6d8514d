package vault

import (
	"unicode/utf16"
	"unicode/utf8"
)

// percentView decodes s's percent escapes (%xx, either case; with plus,
// also '+' as a space); nil if s has none.
func percentView(s []byte, plus, mapped bool) *view {
	v := newView(len(s), mapped)
	decoded := false
	for i := 0; i < len(s); {
		switch {
		case s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v.add(unhex(s[i+1])<<4|unhex(s[i+2]), i, i+3)
			i += 3
			decoded = true
		case plus && s[i] == '+':
			v.add(' ', i, i+1)
			i++
			decoded = true
		default:
			v.add(s[i], i, i+1)
			i++
		}
	}
	if !decoded {
		return nil
	}
	return v
}

// newView makes a view of a text of n bytes; mapped, it remembers where
// each byte came from (which is only needed once something is found).
func newView(n int, mapped bool) *view {
	v := &view{dec: make([]byte, 0, n)}
	if mapped {
		v.from, v.to = make([]int, 0, n), make([]int, 0, n)
	}
	return v
}

func (v *view) add(b byte, from, to int) {
	v.dec = append(v.dec, b)
	if v.from != nil {
		v.from = append(v.from, from)
		v.to = append(v.to, to)
	}
}

func isHex(c byte) bool { return hexDigit[c] }

var hexDigit = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF") {
		t[c] = true
	}
	return t
}()

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// escapeView decodes s's JSON string escapes (\" \\ \/ \b \f \n \r \t and
// \uXXXX, surrogate pairs included), as an upstream may write them inside
// a text so that its bytes hold no secret; nil if s has none.
func escapeView(s []byte, mapped bool) *view {
	v := newView(len(s), mapped)
	decoded := false
	for i := 0; i < len(s); {
		if s[i] != '\\' || i+1 >= len(s) {
			v.add(s[i], i, i+1)
			i++
			continue
		}
		if c, ok := simpleEscape(s[i+1]); ok {
			v.add(c, i, i+2)
			i += 2
			decoded = true
			continue
		}
		r, n := unicodeEscape(s[i:])
		if n == 0 {
			v.add(s[i], i, i+1)
			i++
			continue
		}
		var buf [utf8.UTFMax]byte
		for _, b := range buf[:utf8.EncodeRune(buf[:], r)] {
			v.add(b, i, i+n)
		}
		i += n
		decoded = true
	}
	if !decoded {
		return nil
	}
	return v
}

func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// unicodeEscape decodes a \uXXXX escape (and the low half of a surrogate
// pair after it) at the start of s: the rune and the bytes it took, 0 if
// there is none.
func unicodeEscape(s []byte) (rune, int) {
	r, ok := hex4(s)
	if !ok {
		return 0, 0
	}
	if utf16.IsSurrogate(r) {
		if lo, ok := hex4(s[6:]); ok {
			if pair := utf16.DecodeRune(r, lo); pair != utf8.RuneError {
				return pair, 12
			}
		}
	}
	return r, 6
}

// hex4 reads "\uXXXX" at the start of s.
func hex4(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range s[2:6] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}
