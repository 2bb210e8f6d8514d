package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
)

// 'upstreams add --command' takes the program alone and each argument
// from its own --arg: nothing is split, and the server still decides
// which programs may run.
func TestUpstreamsAddStdio(t *testing.T) {
	s := apptest.Start(t)
	env := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	m := filepath.Join(t.TempDir(), "ran")
	// ostiary upstreams add pwn --command "/bin/sh -c 'touch M'": the old form is not split.
	if r := run(env, "upstreams", "add", "pwn", "--command", "/bin/sh -c 'touch "+m+"'"); r.code != ExitUsage || !strings.Contains(r.stderr, "--arg") {
		t.Errorf("a command line in --command: %+v", r)
	}
	// ostiary upstreams add pwn --command /bin/sh --arg -c --arg "touch M"
	if r := run(env, "upstreams", "add", "pwn", "--command", "/bin/sh", "--arg", "-c", "--arg", "touch "+m); r.code != ExitError || !strings.Contains(r.stderr, "--stdio-allow") {
		t.Errorf("a shell: %+v", r)
	}
	if r := run(env, "upstreams", "add", "pwn", "--command", os.Args[0], "--arg", "demo-upstream", "--env", "LD_PRELOAD=/tmp/evil.so"); r.code != ExitError || !strings.Contains(r.stderr, "LD_PRELOAD") {
		t.Errorf("LD_PRELOAD: %+v", r)
	}
	if r := run(env, "upstreams", "add", "pwn", "--url", "http://127.0.0.1:1/mcp", "--arg", "x"); r.code != ExitUsage || !strings.Contains(r.stderr, "--arg goes with --command") {
		t.Errorf("--arg without --command: %+v", r)
	}
	if _, err := os.Stat(m); !os.IsNotExist(err) {
		t.Fatal("a refused command ran")
	}
	want := []string{os.Args[0], "demo-upstream", "a b,c", "$(touch " + m + ")", ""}
	r := run(env, "upstreams", "add", "shop", "--command", want[0], "--arg", want[1], "--arg", want[2], "--arg", want[3], "--arg", want[4]).mustOK(t)
	if !strings.Contains(r.stdout, "shop lists 4 tools") || !strings.Contains(r.stdout, `"a b,c"`) {
		t.Errorf("upstreams add: %s", r.stdout)
	}
	var list adminapi.UpstreamList
	if err := json.Unmarshal([]byte(run(env, "upstreams", "list", "--json").mustOK(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Upstreams) != 1 || !slices.Equal(list.Upstreams[0].Command, want) {
		t.Errorf("stored command %+v, want %q", list.Upstreams, want)
	}
	if _, err := os.Stat(m); !os.IsNotExist(err) {
		t.Fatal("an argument was run by a shell")
	}
}

// serve refuses a stdio allow-list it cannot check, from a flag or from
// OSTIARY_STDIO_ALLOW.
func TestServeStdioAllow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	run(nil, "init", "--data", dir).mustOK(t)
	if r := run(nil, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--stdio-allow", "bin/server"); r.code != ExitUsage || !strings.Contains(r.stderr, "--stdio-allow") {
		t.Errorf("a relative entry: %+v", r)
	}
	if r := run(map[string]string{"OSTIARY_STDIO_ALLOW": "/opt/ok:relative"}, "serve", "--data", dir, "--listen", "127.0.0.1:0"); r.code != ExitUsage || !strings.Contains(r.stderr, `"relative"`) {
		t.Errorf("a relative entry in OSTIARY_STDIO_ALLOW: %+v", r)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if r := run(nil, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--stdio-allow", missing); r.code == ExitOK || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("a missing entry: %+v", r)
	}
}
