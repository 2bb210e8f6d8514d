package jcs

import (
	"errors"
	"testing"

	"github.com/ostiary/ostiary/internal/strictjson"
)

// Numbers the canonical form cannot carry exactly are refused; the rest
// are rewritten to the one text that is hashed and forwarded.
func TestExact(t *testing.T) {
	ok := map[string]string{
		`{"a":1}`:                      `{"a":1}`,
		`{"a":1.0}`:                    `{"a":1}`,
		`{"a":1.50}`:                   `{"a":1.5}`,
		`{"a":15e-1}`:                  `{"a":1.5}`,
		`{"a":0.1}`:                    `{"a":0.1}`,
		`{"a":-0}`:                     `{"a":0}`,
		`{"a":1E2}`:                    `{"a":100}`,
		`{"a":9007199254740992}`:       `{"a":9007199254740992}`,
		`{"a":-9007199254740992}`:      `{"a":-9007199254740992}`,
		`{"a":[1e-7,{"b":2.50}]}`:      `{"a":[1e-7,{"b":2.5}]}`,
		`{"a":0.30000000000000004}`:    `{"a":0.30000000000000004}`,
		`{"a":123456789012345.67}`:     `{"a":123456789012345.67}`,
		`{"a":"12345678901234567890"}`: `{"a":"12345678901234567890"}`,
	}
	for in, want := range ok {
		v, err := strictjson.Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if err := Exact(v, "$"); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		got, _ := Append(nil, v)
		if string(got) != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
	refused := []string{
		`{"account":12345678901234567890}`, `{"account":12345678901234567891}`,
		`{"a":9007199254740993}`, `{"a":9007199254740994}`, `{"a":-9007199254740993}`, `{"a":1e16}`,
		`{"a":0.10000000000000000001}`, `{"a":1.00000000000000001}`, `{"a":[0,{"b":3.141592653589793238}]}`,
		`{"a":1e400}`, `{"a":1e-400}`, `{"a":2.5e-324}`,
	}
	for _, in := range refused {
		v, err := strictjson.Parse([]byte(in))
		if err != nil {
			t.Fatal(in, err)
		}
		var ie *InexactNumberError
		if err := Exact(v, "$"); !errors.As(err, &ie) {
			t.Errorf("%s: %v, want InexactNumberError", in, err)
		}
	}
}
