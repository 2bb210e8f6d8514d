package strictjson

import (
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// A CaseCollision is an object, somewhere in a parsed tree, holding two
// member names that are equal under Unicode simple case folding ("ms" and
// "MS", "sk" and "ſK"). Readers that match names case-insensitively (Go's
// encoding/json, many others) take one of them and drop the other, each its
// own way, so such an object means different things to different readers.
type CaseCollision struct {
	Path string    // of the object, e.g. $.params.arguments
	Keys [2]string // the colliding names, quoted and bounded for display
}

func (c *CaseCollision) Error() string {
	return "object " + c.Path + " has member names that differ only in case: " + c.Keys[0] + " and " + c.Keys[1]
}

// FindCaseCollision walks a tree returned by Parse and reports the first
// object (in a deterministic order) whose member names collide under
// simple case folding, or nil.
func FindCaseCollision(v any, path string) *CaseCollision {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) > 1 {
			seen := make(map[string]string, len(keys))
			for _, k := range keys {
				f := Fold(k)
				if other, dup := seen[f]; dup {
					return &CaseCollision{Path: path, Keys: [2]string{quoteKey(other), quoteKey(k)}}
				}
				seen[f] = k
			}
		}
		for _, k := range keys {
			if c := FindCaseCollision(x[k], path+"."+quoteKey(k)); c != nil {
				return c
			}
		}
	case []any:
		for i, e := range x {
			if c := FindCaseCollision(e, path+"["+strconv.Itoa(i)+"]"); c != nil {
				return c
			}
		}
	}
	return nil
}

// Fold maps s to one representative of its class under Unicode simple case
// folding: two strings are equal under strings.EqualFold exactly when their
// Folds are equal. Each rune becomes the smallest rune of its folding orbit.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii { // an ASCII letter's orbit minimum is its upper case (K for k and the Kelvin sign, S for s and ſ)
		b := []byte(s)
		for i, c := range b {
			if c >= 'a' && c <= 'z' {
				b[i] = c - 'a' + 'A'
			}
		}
		return string(b)
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, foldRune(r))
	}
	return string(out)
}

func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}
