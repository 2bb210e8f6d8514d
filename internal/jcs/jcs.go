// Package jcs implements the JSON Canonicalization Scheme (RFC 8785): one byte
// sequence for every JSON value, so that hashes and signatures over JSON are
// reproducible by anyone. Object members are sorted by their UTF-16 code
// units, strings use the minimal escaping of ECMAScript's JSON.stringify and
// numbers its shortest round-trip form.
//
// Input is parsed with strictjson, so duplicate keys, invalid UTF-8 and lone
// surrogates are refused rather than silently normalised.
package jcs

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/ostiary/ostiary/internal/strictjson"
)

// Canonicalize returns the canonical form of the JSON text data.
func Canonicalize(data []byte) ([]byte, error) {
	v, err := strictjson.Parse(data)
	if err != nil {
		return nil, err
	}
	return Append(nil, v)
}

// Append appends the canonical encoding of v to dst. v is a tree of
// map[string]any, []any, []string, string, json.Number, float64, int, int64,
// uint64, bool and nil; any other type is an error.
func Append(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return AppendString(dst, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("jcs: number %s out of range", x)
		}
		return appendNumber(dst, f)
	case float64:
		return appendNumber(dst, x)
	case int:
		return appendInt(dst, int64(x))
	case int64:
		return appendInt(dst, x)
	case uint64:
		if x > 1<<53 {
			return nil, fmt.Errorf("jcs: integer %d exceeds 2^53", x)
		}
		return strconv.AppendUint(dst, x, 10), nil
	case []any:
		return appendArray(dst, len(x), func(dst []byte, i int) ([]byte, error) { return Append(dst, x[i]) })
	case []string:
		return appendArray(dst, len(x), func(dst []byte, i int) ([]byte, error) { return AppendString(dst, x[i]) })
	case map[string]any:
		return appendObject(dst, x)
	default:
		return nil, fmt.Errorf("jcs: unsupported type %T", v)
	}
}

func appendInt(dst []byte, x int64) ([]byte, error) {
	if x > 1<<53 || x < -(1<<53) {
		return nil, fmt.Errorf("jcs: integer %d exceeds 2^53", x)
	}
	return strconv.AppendInt(dst, x, 10), nil
}

func appendArray(dst []byte, n int, elem func([]byte, int) ([]byte, error)) ([]byte, error) {
	dst = append(dst, '[')
	var err error
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = elem(dst, i); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

func appendObject(dst []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = AppendString(dst, k); err != nil {
			return nil, err
		}
		dst = append(dst, ':')
		if dst, err = Append(dst, m[k]); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 §3.2.3
// requires (this differs from byte order for characters above U+FFFF).
//
// Code point order (which UTF-8 byte order follows) and UTF-16 order agree
// unless one rune is supplementary (≥ U+10000) and the other is not: then the
// supplementary rune's high surrogate (U+D800–U+DBFF) is what compares.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if (ra >= 0x10000) == (rb >= 0x10000) {
				return cmp.Compare(ra, rb)
			}
			return cmp.Compare(firstUnit(ra), firstUnit(rb))
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

// AppendString appends s as a canonical JSON string. s must be valid UTF-8.
func AppendString(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("jcs: string is not valid UTF-8")
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			dst = append(dst, '\\', '"')
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"'), nil
}

const hexDigit = "0123456789abcdef"

// appendNumber formats f as ECMAScript's Number.prototype.toString does,
// which is what RFC 8785 §3.2.2.3 prescribes.
func appendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("jcs: NaN and infinities have no JSON form")
	}
	if f == 0 { // also -0
		return append(dst, '0'), nil
	}
	if abs := math.Abs(f); abs >= 1e21 || abs < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64) // e.g. 1e+21, 1.5e-07
		mant, exp, _ := strings.Cut(s, "e")
		sign, digits := exp[:1], strings.TrimLeft(exp[1:], "0")
		return append(append(dst, mant...), "e"+sign+digits...), nil
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64), nil
}
