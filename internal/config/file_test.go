package config

import (
	"strings"
	"testing"
)

// ParseFile keeps the values and lines of a good file.
func TestParseFile(t *testing.T) {
	s, err := ParseFile("f", []byte("# c\nlisten: 127.0.0.1:1 # trailing\nstdio-allow:\n  - /a\n  - '/b c'\nrate-key: 10/s\nempty-list: []\ntls-min: \"1.3\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{{"listen", []string{"127.0.0.1:1"}, false, 2}, {"stdio-allow", []string{"/a", "/b c"}, true, 3},
		{"rate-key", []string{"10/s"}, false, 6}, {"empty-list", nil, true, 7}, {"tls-min", []string{"1.3"}, false, 8}}
	if len(s) != len(want) {
		t.Fatalf("%+v", s)
	}
	for i := range want {
		if s[i].Key != want[i].Key || strings.Join(s[i].Values, "|") != strings.Join(want[i].Values, "|") || s[i].List != want[i].List || s[i].Line != want[i].Line {
			t.Errorf("setting %d: %+v, want %+v", i, s[i], want[i])
		}
	}
}

// No input makes ParseFile panic, and whatever it accepts has a line and
// values that are plain strings.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{"listen: 127.0.0.1:1\n", "a: [1, 2]\n", "a: &x 1\nb: *x\n", "<<: {a: 1}\n", "a: !!binary aGk=\n", "---\n---\n", "a:\n  b: 1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseFile("f", data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, x := range s {
			if x.Line < 1 || x.Key == "" || seen[x.Key] || (!x.List && len(x.Values) != 1) {
				t.Fatalf("accepted %q as %+v", data, s)
			}
			seen[x.Key] = true
		}
	})
}
