package jcs

import (
	"math"
	"slices"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
func TestNumberVectors(t *testing.T) {
	vectors := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, v := range vectors {
		got, err := Append(nil, math.Float64frombits(v.bits))
		if err != nil {
			t.Fatalf("%#x: %v", v.bits, err)
		}
		if string(got) != v.want {
			t.Errorf("%#x: got %s, want %s", v.bits, got, v.want)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := Append(nil, bad); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

// RFC 8785 §3.2.2 and §3.2.3 examples.
func TestCanonicalizeVectors(t *testing.T) {
	cases := []struct{ in, want string }{
		{
			`{
			  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
			  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
			  "literals": [null, true, false]
			}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			// Sorting by UTF-16 code units: U+1F600 (surrogates D83D DE00)
			// sorts before U+FB33 although its UTF-8 bytes sort after.
			`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{`  "<>&\u2028"  `, "\"<>&\u2028\""},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`-0`, `0`},
		{`1.0e2`, `100`},
	}
	for _, c := range cases {
		got, err := Canonicalize([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Canonicalize(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestCanonicalizeRefuses(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`,   // duplicate key
		"\"\xff\"",        // invalid UTF-8
		`"\ud800"`,        // lone surrogate
		`1e400`,           // out of range
		`{"a":1} {"b":2}`, // two values
	} {
		if _, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("Canonicalize(%q): want an error", in)
		}
	}
	if _, err := Append(nil, int64(1<<53+1)); err == nil {
		t.Error("integer beyond 2^53: want an error")
	}
	if _, err := Append(nil, struct{}{}); err == nil {
		t.Error("unsupported type: want an error")
	}
}

// The canonical form is a fixed point and survives a round trip.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":[1,2.5,"x"],"a":{"z":null,"y":true}}`, `"\u00e9\ud83d\ude00"`, `1e-7`, `[[[]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err := Canonicalize(data)
		if err != nil {
			return
		}
		c2, err := Canonicalize(c1)
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", c1, err)
		}
		if string(c1) != string(c2) {
			t.Fatalf("not a fixed point: %q -> %q", c1, c2)
		}
	})
}

// compareUTF16 agrees with the obvious definition.
func FuzzCompareUTF16(f *testing.F) {
	f.Add("\uffff", "\U00010000")
	f.Add("a\ue000", "a\U0001f600")
	f.Add("ab", "a")
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		want := slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
		if got := compareUTF16(a, b); got != want {
			t.Fatalf("compareUTF16(%q, %q) = %d, want %d", a, b, got, want)
		}
	})
}
