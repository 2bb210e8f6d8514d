package jcs

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// An InexactNumberError names a number that the canonical form cannot carry
// exactly: the value a reader of the client's digits sees would differ from
// the one hashed, checked and shown to an approver.
type InexactNumberError struct {
	Path   string // e.g. $.account
	Reason string
}

func (e *InexactNumberError) Error() string {
	return fmt.Sprintf("number at %s %s; send it as a string", e.Path, e.Reason)
}

// MaxExactInteger is the largest magnitude every JSON reader holds exactly
// (2^53: JavaScript's Number.MAX_SAFE_INTEGER + 1).
const MaxExactInteger = 1 << 53

// Exact makes every json.Number in the tree v (as strictjson.Parse returns
// it) canonical in place, after checking that its value survives: it must
// be within ±2^53 and equal, digit for digit, to the shortest round-trip
// form of its float64. So {"account":12345678901234567890} is refused
// instead of being hashed as 12345678901234567000 while the digits sent
// say otherwise, and after Exact, Append(v) is the only text of v: what is
// hashed, validated, shown and forwarded is one thing.
func Exact(v any, path string) error {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if n, ok := e.(json.Number); ok {
				c, err := exactNumber(n, path+"."+strconv.Quote(clipKey(k)))
				if err != nil {
					return err
				}
				x[k] = c
				continue
			}
			if err := Exact(e, path+"."+strconv.Quote(clipKey(k))); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if n, ok := e.(json.Number); ok {
				c, err := exactNumber(n, path+"["+strconv.Itoa(i)+"]")
				if err != nil {
					return err
				}
				x[i] = c
				continue
			}
			if err := Exact(e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

func clipKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}

// exactNumber returns n's canonical text if it denotes the same value.
func exactNumber(n json.Number, path string) (json.Number, error) {
	s := string(n)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || len(s) > 100 {
		return "", &InexactNumberError{path, "is out of range"}
	}
	if math.Abs(f) > MaxExactInteger {
		return "", &InexactNumberError{path, "is beyond ±2^53 (9007199254740992), where JSON readers disagree"}
	}
	c, err := appendNumber(nil, f)
	if err != nil {
		return "", &InexactNumberError{path, "is out of range"}
	}
	if !sameDecimal(s, string(c)) {
		return "", &InexactNumberError{path, "has more precision than a 64-bit float keeps (it would become " + string(c) + ")"}
	}
	return json.Number(c), nil
}

// sameDecimal reports whether two JSON number texts denote the same
// decimal value (1.50 and 15e-1 do; -0 and 0 do).
func sameDecimal(a, b string) bool {
	na, da, ea := decimal(a)
	nb, db, eb := decimal(b)
	return na == nb && da == db && (da == "" || ea == eb)
}

// decimal returns the sign, the significant digits (no leading or trailing
// zeros; "" for zero) and the exponent e of the value 0.DIGITS × 10^e, for
// a syntactically valid JSON number of bounded length.
func decimal(s string) (neg bool, digits string, exp int) {
	neg = strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, e, _ := strings.Cut(strings.ToLower(s), "e")
	if e != "" {
		exp, _ = strconv.Atoi(e) // bounded by the parser: at most 400 in magnitude
	}
	whole, frac, _ := strings.Cut(mant, ".")
	digits = whole + frac
	exp += len(whole)
	trimmed := strings.TrimLeft(digits, "0")
	exp -= len(digits) - len(trimmed)
	digits = strings.TrimRight(trimmed, "0")
	if digits == "" {
		return false, "", 0
	}
	return neg, digits, exp
}
