package govern

import (
	"slices"
	"strings"
	"testing"
)

// Only host names leave an egress tool's arguments for the record: never
// user information, paths, queries, or a string that merely looks like a
// host; hostile input is bounded.
func TestEgressHosts(t *testing.T) {
	args := map[string]any{
		"to":      "Finance Team <Ap@Partner.Example.COM>",
		"webhook": "https://user:hunter2@drop.evil.example:8443/path/secret?token=abc#frag",
		"nested":  []any{map[string]any{"u": "ftp://files.example.org/x"}, "not a url", "mailto-ish@", 42.0},
		"ip":      "http://[2001:db8::1]/x",
		"bad":     "http://exa mple.com/",
		"esc":     "https://evil.example\u202e/x",
		"nohost":  "file:///etc/passwd",
	}
	got := EgressHosts(args)
	want := []string{"2001:db8::1", "drop.evil.example", "files.example.org", "partner.example.com"}
	if !slices.Equal(got, want) {
		t.Fatalf("hosts %q, want %q", got, want)
	}
	for _, h := range got {
		for _, leak := range []string{"hunter2", "secret", "token", "abc", "user", "path"} {
			if strings.Contains(h, leak) {
				t.Errorf("%q holds %q", h, leak)
			}
		}
	}
	var many []any
	for i := range 5000 {
		many = append(many, "https://h"+strings.Repeat("x", i%50)+".example.com/")
	}
	if n := len(EgressHosts(many)); n != maxEgressHosts {
		t.Errorf("%d hosts kept from 5000 strings, want %d", n, maxEgressHosts)
	}
}

func FuzzEgressHosts(f *testing.F) {
	for _, s := range []string{"https://a.example.com/x", "x@y.example", "http://[::1]:80/", "://", "a@b@c", "https://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, h := range EgressHosts([]any{s}) {
			if !hostRE.MatchString(h) || strings.ContainsAny(h, "/?#@ \t\r\n") {
				t.Fatalf("%q gave host %q", s, h)
			}
		}
	})
}
