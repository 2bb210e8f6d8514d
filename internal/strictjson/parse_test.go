package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRefuses(t *testing.T) {
	cases := map[string]string{
		"duplicate key":           `{"name":"a","name":"b"}`,
		"nested duplicate":        `{"a":{"x":1,"x":1}}`,
		"escaped duplicate":       `{"name":1,"n\u0061me":2}`,
		"invalid utf-8 value":     "{\"a\":\"\xc3\x28\"}",
		"invalid utf-8 key":       "{\"\xff\":1}",
		"lone high surrogate":     `"\ud800x"`,
		"lone low surrogate":      `"\udc00"`,
		"raw control char":        "\"a\x01b\"",
		"trailing data":           `{} x`,
		"two values":              `1 2`,
		"empty":                   ``,
		"leading zero":            `01`,
		"bare dot":                `1.`,
		"unterminated":            `{"a":`,
		"single quotes":           `{'a':1}`,
		"trailing comma":          `[1,]`,
		"bad escape":              `"\x"`,
		"NaN":                     `NaN`,
		"too deep":                strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		"truncated unicode escap": `"\u12"`,
	}
	for name, in := range cases {
		_, err := Parse([]byte(in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%s: Parse(%q) = %v, want a SyntaxError", name, in, err)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	v, err := Parse([]byte(` {"a":[1,-2.5e3,true,false,null],"b":"\u00e9\ud83d\ude00\n","c":{}} `))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["b"] != "é😀\n" {
		t.Errorf("b = %q", m["b"])
	}
	arr := m["a"].([]any)
	if arr[1] != json.Number("-2.5e3") || arr[2] != true || arr[4] != nil {
		t.Errorf("a = %#v", arr)
	}
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Parse([]byte(deep)); err != nil {
		t.Errorf("depth %d refused: %v", MaxDepth, err)
	}
}

type body struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles,omitempty"`
	Inner *struct {
		Flag bool `json:"flag"`
	} `json:"inner"`
	Skip string `json:"-"`
}

func TestDecode(t *testing.T) {
	var b body
	if err := Decode([]byte(`{"name":"alice","roles":["x"],"inner":{"flag":true}}`), &b); err != nil {
		t.Fatal(err)
	}
	if b.Name != "alice" || len(b.Roles) != 1 || !b.Inner.Flag {
		t.Errorf("decoded %+v", b)
	}
	refused := map[string]string{
		"case variant":       `{"Name":"alice"}`,
		"unknown":            `{"name":"a","admin":true}`,
		"nested unknown":     `{"inner":{"flag":true,"x":1}}`,
		"nested case":        `{"inner":{"FLAG":true}}`,
		"dash field":         `{"Skip":"x"}`,
		"wrong type":         `{"name":5}`,
		"duplicate":          `{"name":"a","name":"b"}`,
		"NUL-suffixed field": "{\"name\\u0000\":\"a\"}",
	}
	for name, in := range refused {
		var b body
		if err := Decode([]byte(in), &b); err == nil {
			t.Errorf("%s: Decode(%s) accepted: %+v", name, in, b)
		}
	}
}

// Whatever Parse accepts, encoding/json accepts too and reads the same way.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, `"\ud83d\ude00"`, `-0.5e-3`, `{"a":1,"a":2}`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted %q which encoding/json rejects", data)
		}
		a, _ := json.Marshal(v)
		var w any
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if err := dec.Decode(&w); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(w)
		if string(a) != string(b) {
			t.Fatalf("disagreement on %q: %s vs %s", data, a, b)
		}
	})
}

// Numbers are bounded where they are parsed: no reader after the parser
// pays for 1e-1000000 (a million digits as an exact rational).
func TestParseBoundsNumbers(t *testing.T) {
	refused := []string{
		`1e-1000000`, `1e401`, `-1E+401`, `1e0000000000401`, `[0.5e-401]`,
		"1" + strings.Repeat("0", MaxNumberLen),           // 101 digits
		"0." + strings.Repeat("1", MaxNumberLen-2) + "e1", // 103 characters
	}
	for _, in := range refused {
		_, err := Parse([]byte(in))
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "number") {
			t.Errorf("Parse(%.40q) = %v, want a number refusal", in, err)
		}
	}
	accepted := []string{`1e400`, `1e-400`, `1E+0000400`, `-0.5e-400`, strings.Repeat("9", MaxNumberLen), `0`, `-0.0`}
	for _, in := range accepted {
		if _, err := Parse([]byte(in)); err != nil {
			t.Errorf("Parse(%.40q): %v", in, err)
		}
	}
}

// Member names equal under simple case folding collide, at any depth, in
// every script that has case; names that merely look alike do not.
func TestFindCaseCollision(t *testing.T) {
	collide := map[string]string{
		`{"ms":1,"MS":3000}`:               "$",
		`{"a":{"path":"x","Path":"y"}}`:    `$."a"`,
		`{"a":[{"ok":1},{"id":1,"ID":2}]}`: `$."a"[1]`,
		`{"sk":1,"\u017fK":2}`:             "$", // long s and the Kelvin sign fold to s and k
		`{"k":1,"\u212a":2}`:               "$",
		`{"σ":1,"Σ":2}`:                    "$",
		`{"ς":1,"σ":2}`:                    "$", // final sigma folds with sigma
		`{"straße":1,"STRAßE":2}`:          "$",
	}
	for in, path := range collide {
		v, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(in, err)
		}
		c := FindCaseCollision(v, "$")
		if c == nil || c.Path != path {
			t.Errorf("%s: %v, want a collision at %s", in, c, path)
		}
	}
	for _, in := range []string{`{"a":1,"b":2}`, `{"ss":1,"ß":2}`, `{"i":1,"ı":2}`, `{"o":1,"о":2}`, `[{"x":1},{"X":1}]`, `{}`} {
		v, _ := Parse([]byte(in))
		if c := FindCaseCollision(v, "$"); c != nil {
			t.Errorf("%s: %v", in, c)
		}
	}
	if err := Decode([]byte(`{"X-Tenant":"a","x-tenant":"b"}`), new(map[string]string)); err == nil {
		t.Error("Decode took a map with case-variant keys")
	}
}

// Fold agrees with strings.EqualFold.
func FuzzFold(f *testing.F) {
	f.Add("ms", "MS")
	f.Add("\u017f", "s")
	f.Add("\u212a", "k")
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		if (Fold(a) == Fold(b)) != strings.EqualFold(a, b) {
			t.Errorf("Fold(%q)=%q Fold(%q)=%q, EqualFold %v", a, Fold(a), b, Fold(b), strings.EqualFold(a, b))
		}
	})
}
