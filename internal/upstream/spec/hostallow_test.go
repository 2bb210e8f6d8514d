package spec

import "testing"

// A list allows its exact hosts and the subdomains of its *.domain
// entries, nothing else; no list allows any host.
func TestHostAllow(t *testing.T) {
	a := NewHostAllow([]string{"x.test", "::1", "10.0.0.1", "*.corp.test"})
	for host, want := range map[string]bool{"x.test": true, "::1": true, "10.0.0.1": true, "y.x.test": false, "x.test.evil": false,
		"a.corp.test": true, "a.b.corp.test": true, "corp.test": false, "evilcorp.test": false} {
		if a.Allows(host) != want {
			t.Errorf("%s: %v", host, !want)
		}
	}
	if a := NewHostAllow(nil); a != nil || !a.Allows("any.test") {
		t.Error("an empty list is no list")
	}
}
