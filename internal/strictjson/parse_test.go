package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
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
