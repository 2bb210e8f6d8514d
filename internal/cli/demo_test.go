package cli

import "testing"

// The demo prints commands that run as printed: the binary's own path
// (quoted for the shell when needed), or 'go run ./cmd/ostiary' for the
// temporary build of 'go run', which is gone once the demo stops.
func TestSelfCommand(t *testing.T) {
	for exe, want := range map[string]string{
		"/usr/local/bin/ostiary":                   "/usr/local/bin/ostiary",
		"/home/ann/my tools/ostiary":               "'/home/ann/my tools/ostiary'",
		"/home/ann/it's/ostiary":                   `'/home/ann/it'\''s/ostiary'`,
		"/tmp/go-build2865613397/b001/exe/ostiary": "go run ./cmd/ostiary",
		"/home/ann/exe/ostiary":                    "/home/ann/exe/ostiary",
		"":                                         "ostiary",
	} {
		if got := selfCommand(exe); got != want {
			t.Errorf("selfCommand(%q) = %q, want %q", exe, got, want)
		}
	}
}
