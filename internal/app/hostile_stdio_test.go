package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
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
	mustNotExist(t, m)
	if n := len(records(t, s, audit.Query{Event: "upstream-spawn"})); n != 0 {
		t.Fatalf("%d processes were started", n)
	}
}

// Environment variables that make a program load other code are refused,
// whatever their case: an allowed binary with LD_PRELOAD is any code.
func TestStdioLoaderEnvRefused(t *testing.T) {
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
}
