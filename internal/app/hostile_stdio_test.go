package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// argvUpstream is the mode of this test binary that the stdio tests run
// as an upstream: 'app.test argv-upstream MARKER ARG...' creates MARKER
// (so a test sees whether the process ran at all) and serves one tool,
// argv, answering with the arguments after MARKER exactly as received and
// the names of its environment. It is chosen in init, before TestMain, so
// that this file needs no change elsewhere.
const argvUpstream = "argv-upstream"

func init() {
	if len(os.Args) < 3 || os.Args[1] != argvUpstream {
		return
	}
	if err := os.WriteFile(os.Args[2], nil, 0o600); err != nil {
		os.Exit(1)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "argv", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "argv", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, map[string]any, error) {
			var names []string
			for _, kv := range os.Environ() {
				names = append(names, strings.SplitN(kv, "=", 2)[0])
			}
			return nil, map[string]any{"args": os.Args[3:], "env": names}, nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// marker is a path the attack command would create; absent means the
// command never ran.
func marker(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "ran")
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists: the refused command ran", path)
	}
}

// refusedAdd posts body and expects a 400 whose message contains want,
// recorded as a refused upstream-add.
func refusedAdd(t *testing.T, s *apptest.Server, body map[string]any, want string) {
	t.Helper()
	r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, body)
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), want) {
		t.Fatalf("%v: status %d, body %s; want 400 naming %q", body["command"], r.Status, r.Body, want)
	}
	rec := lastRecord(t, s)
	if rec.Event != "upstream-add" || rec.Outcome == audit.Success {
		t.Fatalf("the refusal is not on record: %+v", rec)
	}
}

// An admin API key is not a shell on the gateway host: a stdio command
// must be a program the operator allowed when the server started.
func TestStdioShellRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	m := marker(t)
	// POST /api/v1/upstreams {"name":"pwn","command":["/bin/sh","-c","touch M"]}
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{"/bin/sh", "-c", "touch " + m}}, "--stdio-allow")
	// A program that is not on the allow-list, however harmless it looks.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{"/usr/bin/touch", m}}, "--stdio-allow")
	// A relative name would be looked up on PATH.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{"touch", m}}, "absolute")
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{"./touch", m}}, "absolute")
	// The old CLI's shape: one string with spaces is not split by anyone.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{"/bin/sh -c touch " + m}}, "argument")
	// {"command":"/bin/sh -c 'touch M'"}: a string is not a list.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": "/bin/sh -c 'touch " + m + "'"}, "command")
	mustNotExist(t, m)
	if n := len(records(t, s, audit.Query{Event: "upstream-spawn"})); n != 0 {
		t.Fatalf("%d processes were started", n)
	}
}

// Environment variables that make a program load other code are refused,
// whatever their case: an allowed binary with LD_PRELOAD is any code.
func TestStdioLoaderEnvRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	m := marker(t)
	for _, name := range []string{"LD_PRELOAD", "ld_preload", "Ld_Library_Path", "NODE_OPTIONS", "PYTHONSTARTUP", "PERL5OPT", "BASH_ENV", "PATH", "GLIBC_TUNABLES"} {
		// POST /api/v1/upstreams {"command":[TESTBIN,"argv-upstream",M],"env":{"LD_PRELOAD":"/tmp/evil.so"}}
		refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{os.Args[0], argvUpstream, m},
			"env": map[string]string{name: "/tmp/evil.so"}}, name)
	}
	mustNotExist(t, m)
}

// Arguments are a list that reaches the program byte for byte: nothing
// splits, expands or interprets them.
func TestStdioArgumentsVerbatim(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	m := marker(t)
	evil := filepath.Join(filepath.Dir(m), "evil")
	args := []string{"two words", "$(touch " + evil + ")", "`touch " + evil + "`", "; touch " + evil, "'\"", "*", "a\tb", "--flag=x y", ""}
	// POST /api/v1/upstreams {"name":"echo","command":[TESTBIN,"argv-upstream",M,"two words","$(touch E)",…]}
	cs, _ := userOn(t, s, "alice", map[string]any{"name": "echo", "command": append([]string{os.Args[0], argvUpstream, m}, args...),
		"env": map[string]string{"MODE": "a b $(x)"}})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo.argv"})
	if err != nil || res.IsError {
		t.Fatalf("%+v %v", res, err)
	}
	got := res.StructuredContent.(map[string]any)
	if !slices.Equal(anyStrings(got["args"]), args) {
		t.Errorf("the program received %q, want %q", got["args"], args)
	}
	env := anyStrings(got["env"])
	slices.Sort(env)
	if !slices.Equal(env, []string{"MODE", "PATH"}) {
		t.Errorf("the program's environment holds %v, want MODE and PATH only", env)
	}
	mustNotExist(t, evil)
	var r struct {
		Upstreams []struct {
			Command []string `json:"command"`
		} `json:"upstreams"`
	}
	s.Do("GET", "/api/v1/upstreams", s.AdminKey, nil).JSON(t, &r)
	if len(r.Upstreams) != 1 || !slices.Equal(r.Upstreams[0].Command[3:], args) {
		t.Errorf("listed as %+v", r.Upstreams)
	}
	add := records(t, s, audit.Query{Event: "upstream-add"})[0]
	if c := anyStrings(add.Detail["command"]); !slices.Equal(c[3:], args) {
		t.Errorf("recorded command %q", add.Detail["command"])
	}
	for _, r := range records(t, s, audit.Query{}) {
		if b, _ := json.Marshal(r); strings.Contains(string(b), "a b $(x)") {
			t.Fatalf("an environment value reached the audit log: %s", b)
		}
	}
}

// copyFile copies an executable into dir under name.
func copyFile(t *testing.T, from, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, name)
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return to
}

// An allowed directory allows the programs directly in it, and nothing
// that merely looks as if it were there.
func TestStdioAllowedDirectoryEscapes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	server := copyFile(t, exe, dir, "server")
	shell := copyFile(t, "/bin/sh", dir, "sh")
	copyFile(t, "/bin/sh", dir, "bash5")
	if err := os.Symlink("/bin/sh", filepath.Join(dir, "srv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, exe, filepath.Join(dir, "sub"), "server")
	s := apptest.StartWith(t, func(c *config.Config) { c.StdioAllow = []string{dir + "/"} })
	m := marker(t)
	attack := []string{"-c", "touch " + m}
	// {"command":[DIR+"/../../../bin/sh","-c","touch M"]}: a traversal out of the directory.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": append([]string{dir + "/../../../bin/sh"}, attack...)}, "clean")
	// {"command":[DIR+"/srv",…]}, DIR/srv being a link to /bin/sh.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": append([]string{filepath.Join(dir, "srv")}, attack...)}, "not on this server's list")
	// A shell copied into the directory, by its name or a versioned one.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": append([]string{shell}, attack...)}, "interpreter")
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": append([]string{filepath.Join(dir, "bash5")}, attack...)}, "interpreter")
	// A program in a subdirectory is not directly inside.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{filepath.Join(dir, "sub", "server"), argvUpstream, m}}, "not on this server's list")
	mustNotExist(t, m)
	// What the directory does hold runs.
	cs, _ := userOn(t, s, "alice", map[string]any{"name": "ok", "command": []string{server, argvUpstream, m, "x"}})
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ok.argv"}); err != nil || res.IsError {
		t.Fatalf("%+v %v", res, err)
	}
}

// A shell runs only if the operator named that very file.
func TestStdioInterpreterNamedExactly(t *testing.T) {
	t.Parallel()
	m := marker(t)
	s := apptest.StartWith(t, func(c *config.Config) { c.StdioAllow = []string{"/bin/sh"} })
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "sh", "command": []string{"/bin/sh", "-c", "touch " + m}}), http.StatusCreated)
	if _, err := os.Stat(m); err != nil {
		t.Fatalf("the named shell did not run: %v", err)
	}
	if !strings.Contains(s.Log.String(), "names a shell or interpreter") {
		t.Error("the operator was not warned that the list names a shell")
	}
	// Naming /bin/sh allows that file, not its directory.
	refusedAdd(t, s, map[string]any{"name": "pwn", "command": []string{"/bin/cat", "/etc/passwd"}}, "--stdio-allow")
}

// An upstream stored while its program was allowed does not start after a
// restart whose list no longer holds it, nor with a list emptied: the call
// fails, says why, and the refusal is recorded.
func TestStdioNarrowedAtRestart(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	m := marker(t)
	cs, key := userOn(t, s, "alice", map[string]any{"name": "echo", "command": []string{os.Args[0], argvUpstream, m}})
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo.argv"}); err != nil || res.IsError {
		t.Fatalf("%+v %v", res, err)
	}
	cs.Close()
	s.Stop()
	other := t.TempDir()
	for _, allow := range [][]string{{other}, nil} {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
		s.Restart(func(c *config.Config) { c.StdioAllow = allow })
		cs, err := s.Client(t, key, "")
		if err != nil {
			t.Fatal(err)
		}
		// tools/call {"name":"echo.argv"} after the restart.
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo.argv"})
		if err == nil && !res.IsError {
			t.Fatalf("%v: the call succeeded: %+v", allow, res)
		}
		if err == nil && !strings.Contains(resultText(res), "not allowed") {
			t.Errorf("%v: the caller is not told why: %s", allow, resultText(res))
		}
		mustNotExist(t, m)
		spawn := records(t, s, audit.Query{Event: "upstream-spawn", Limit: 1})[0]
		if spawn.Outcome != audit.Denied || spawn.Reason != "stdio-command-refused" || spawn.Actor != "alice" ||
			!strings.Contains(spawn.Detail["error"].(string), "--stdio-allow") {
			t.Errorf("%v: spawn record %+v", allow, spawn)
		}
		// A sync says so too, and starts nothing.
		r := s.Do("POST", "/api/v1/upstreams/echo/sync", s.AdminKey, nil)
		if !strings.Contains(string(r.Body), "cannot start the upstream") {
			t.Errorf("%v: sync: %d %s", allow, r.Status, r.Body)
		}
		mustNotExist(t, m)
		cs.Close()
		s.Stop()
		if err := os.WriteFile(m, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// The list is the operator's to get right, and a wrong one stops the
// start instead of allowing more, or less, than was meant.
func TestStdioAllowCheckedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	file := filepath.Join(dir, "data.txt")
	os.WriteFile(file, nil, 0o644)
	for entry, want := range map[string]string{
		"bin/server":             "absolute",
		filepath.Join(dir, "no"): "no such file",
		file + "/":               "not a directory",
		file:                     "not an executable",
		open:                     "writable by everyone",
		"/usr/bin/":              "one by one",
		"/bin":                   "one by one",
	} {
		cfg := serveConfig(t.TempDir())
		cfg.StdioAllow = []string{entry}
		if _, err := openWith(cfg); err == nil || !strings.Contains(err.Error(), "--stdio-allow") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming --stdio-allow and %q", entry, err, want)
		}
	}
}
