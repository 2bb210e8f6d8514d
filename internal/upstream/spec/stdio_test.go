package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoaderEnv(t *testing.T) {
	for _, name := range []string{"LD_PRELOAD", "ld_preload", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "NODE_OPTIONS", "node_options",
		"NODE_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PythonHome", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS",
		"_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "BASH_ENV", "ENV", "PATH", "Path", "SHELLOPTS", "BASHOPTS", "PS4", "IFS",
		"GCONV_PATH", "LOCPATH", "MALLOC_CHECK_", "GLIBC_TUNABLES", "HOME", "GIT_CONFIG_COUNT", "GIT_SSH_COMMAND", "npm_config_node_options",
		"OPENSSL_CONF", "LUA_INIT"} {
		if !LoaderEnv(name) {
			t.Errorf("%s allowed", name)
		}
	}
	for _, name := range []string{"MODE", "SHOP_TOKEN", "NODE_ENV", "LANG", "TZ", "LOG_LEVEL", "PATHNAME_PREFIX", "ENVIRONMENT", "GIT_AUTHOR_NAME"} {
		if LoaderEnv(name) {
			t.Errorf("%s refused", name)
		}
	}
}

func TestInterpreter(t *testing.T) {
	for _, p := range []string{"/bin/sh", "/usr/bin/bash", "/bin/dash", "/usr/bin/python3", "/usr/bin/python3.12", "/opt/x/PYTHON",
		"/usr/bin/perl5.36", "/usr/bin/node", "/usr/bin/nodejs", "/bin/busybox", "/usr/bin/env", "/usr/bin/php8.2", "/usr/bin/lua5.4",
		"/usr/bin/ruby3.1", "/usr/bin/zsh", "/usr/bin/npx", "/usr/bin/awk"} {
		if !Interpreter(p) {
			t.Errorf("%s is not taken for an interpreter", p)
		}
	}
	for _, p := range []string{"/opt/mcp/server", "/opt/mcp/mcp-server-github", "/usr/local/bin/ostiary", "/opt/x/shop", "/opt/x/python-mcp"} {
		if Interpreter(p) {
			t.Errorf("%s is taken for an interpreter", p)
		}
	}
}

func TestValidStdio(t *testing.T) {
	ok := Upstream{Name: "s", Kind: Stdio, Command: []string{"/opt/mcp/server", "two words", "$(id)", ""}, Env: map[string]string{"MODE": "a b"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]Upstream{
		"relative":      {Command: []string{"server"}},
		"dot relative":  {Command: []string{"./server"}},
		"spaces":        {Command: []string{"/bin/sh -c id"}},
		"tab":           {Command: []string{"/opt/mcp/server\t--x"}},
		"traversal":     {Command: []string{"/opt/mcp/../../bin/sh"}},
		"double slash":  {Command: []string{"/opt//mcp/server"}},
		"NUL in arg":    {Command: []string{"/opt/mcp/server", "a\x00b"}},
		"many args":     {Command: append([]string{"/opt/mcp/server"}, make([]string, MaxArgs+1)...)},
		"long args":     {Command: []string{"/opt/mcp/server", strings.Repeat("a", MaxArgsBytes)}},
		"LD_PRELOAD":    {Command: []string{"/opt/mcp/server"}, Env: map[string]string{"LD_PRELOAD": "/tmp/x.so"}},
		"ld_preload":    {Command: []string{"/opt/mcp/server"}, Env: map[string]string{"ld_preload": "/tmp/x.so"}},
		"NODE_OPTIONS":  {Command: []string{"/opt/mcp/server"}, Env: map[string]string{"NODE_OPTIONS": "--require /tmp/x.js"}},
		"= in name":     {Command: []string{"/opt/mcp/server"}, Env: map[string]string{"A=B": "c"}},
		"NUL in value":  {Command: []string{"/opt/mcp/server"}, Env: map[string]string{"MODE": "a\x00LD_PRELOAD=x"}},
		"NUL in name":   {Command: []string{"/opt/mcp/server"}, Env: map[string]string{"A\x00": "c"}},
		"empty program": {Command: []string{""}},
	}
	for name, u := range bad {
		u.Name, u.Kind = "s", Stdio
		if err := u.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// exe writes an executable file.
func exe(t *testing.T, path string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStdioAllowCheck(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	server := exe(t, filepath.Join(dir, "server"))
	exact := exe(t, filepath.Join(other, "tool"))
	outside := exe(t, filepath.Join(other, "outside"))
	shell := exe(t, filepath.Join(dir, "bash"))
	namedShell := exe(t, filepath.Join(other, "sh"))
	os.Symlink(outside, filepath.Join(dir, "link-out"))
	os.Symlink(server, filepath.Join(other, "link-in"))
	os.WriteFile(filepath.Join(dir, "data"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	exe(t, filepath.Join(dir, "sub", "server"))
	a, err := NewStdioAllow([]string{dir + "/", exact, namedShell})
	if err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]string{server: server, exact: exact, namedShell: namedShell, filepath.Join(other, "link-in"): server} {
		if got, err := a.Check(cmd); err != nil || got != want {
			t.Errorf("%s: %q %v, want %s", cmd, got, err, want)
		}
	}
	for cmd, want := range map[string]string{
		outside:                          "not on this server's list",
		shell:                            "interpreter",
		filepath.Join(dir, "link-out"):   "not on this server's list",
		filepath.Join(dir, "sub/server"): "not on this server's list",
		filepath.Join(dir, "data"):       "not an executable",
		filepath.Join(dir, "missing"):    "no such file",
		dir + "/../" + filepath.Base(other) + "/outside": "clean",
		"server":  "clean",
		"/bin/sh": "--stdio-allow",
	} {
		_, err := a.Check(cmd)
		if msg, ok := RefusedCommand(err); !ok || !strings.Contains(msg, want) {
			t.Errorf("%s: %v, want a refusal saying %q", cmd, err, want)
		}
	}
	var none *StdioAllow
	if _, err := none.Check(server); err == nil {
		t.Error("a nil list allowed a program")
	}
	// An entry removed after the start allows nothing.
	os.Remove(exact)
	exe(t, exact+"2")
	if _, err := a.Check(exact + "2"); err == nil {
		t.Error("a removed entry allowed a program")
	}
}
