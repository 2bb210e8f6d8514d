package spec

import "testing"

func TestNewHostAllow(t *testing.T) {
	for _, bad := range []string{"", "*", "*.", "https://x.test", "x.test/path", "u@x.test", "x.test:443", "*.1.2.3.4", "ex ample.test", "é.test"} {
		if _, err := NewHostAllow([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	a, err := NewHostAllow([]string{"X.test.", "[::1]", "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"x.test": true, "::1": true, "10.0.0.1": true, "y.x.test": false, "x.test.evil": false} {
		if a.Allows(host) != want {
			t.Errorf("%s: %v", host, !want)
		}
	}
	if a, _ := NewHostAllow(nil); a != nil || !a.Allows("any.test") {
		t.Error("an empty list is no list")
	}
}
