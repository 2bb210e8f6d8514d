package cli

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

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

// A demo that cannot start (its port taken) leaves no temporary data
// directory behind.
func TestDemoRemovesTempDirWhenItFailsToStart(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := run(nil, "demo", "--listen", ln.Addr().String())
	if r.code != ExitError {
		t.Fatalf("demo on a taken port: %+v", r)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "ostiary-demo-*"))
	if len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// 'ostiary completion bash|zsh|fish' prints a script for that shell, and
// the dynamic completion it calls knows serve's flags, --config included.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_ostiary", "zsh": "#compdef ostiary", "fish": "complete -c ostiary"} {
		r := run(nil, "completion", shell).mustOK(t)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s lacks %q", shell, want)
		}
	}
	if r := run(nil, "completion", "tcsh"); r.code != ExitUsage {
		t.Errorf("completion tcsh: %+v", r)
	}
	r := run(nil, "__complete", "serve", "--con").mustOK(t)
	if !strings.Contains(r.stdout, "--config") {
		t.Errorf("completing 'serve --con': %q", r.stdout)
	}
	r = run(nil, "__complete", "conf").mustOK(t)
	if !strings.Contains(r.stdout, "config") {
		t.Errorf("completing 'conf': %q", r.stdout)
	}
}
