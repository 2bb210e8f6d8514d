package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
)

// A stdio upstream runs a program on the gateway host as the gateway's
// user, so the admin API must not be a way to run any program. The
// operator fixes which programs may run when the server starts (StdioAllow,
// from serve --stdio-allow); an API request only picks one of them, gives
// its arguments as a list that nothing splits or interprets, and sets
// environment variables other than those that change how programs load
// code.

// Bounds of a stdio command line.
const (
	MaxArgs      = 256
	MaxArgsBytes = 64 << 10
)

// ValidStdio checks a stdio upstream's command and environment without
// looking at the file system (that is StdioAllow's part).
func (u Upstream) ValidStdio() error {
	if len(u.Command) == 0 || u.Command[0] == "" {
		return errors.New("a stdio upstream needs a command: the absolute path of an allowed program")
	}
	prog := u.Command[0]
	switch {
	case strings.ContainsFunc(prog, unicode.IsSpace):
		return fmt.Errorf("command %q holds a space: the command is the program's absolute path alone; give each argument separately (--arg, or further elements of the API's command list)", clip(prog))
	case !filepath.IsAbs(prog):
		return fmt.Errorf("command %q: want the program's absolute path (no PATH lookup)", clip(prog))
	case filepath.Clean(prog) != prog:
		return fmt.Errorf("command %q: want a clean absolute path, without '.', '..' or '//'", clip(prog))
	}
	if len(u.Command)-1 > MaxArgs {
		return fmt.Errorf("a stdio command takes at most %d arguments", MaxArgs)
	}
	size := 0
	for _, a := range u.Command {
		if strings.ContainsRune(a, 0) {
			return errors.New("a stdio command's arguments cannot contain NUL")
		}
		size += len(a)
	}
	if size > MaxArgsBytes {
		return fmt.Errorf("a stdio command line is at most %d bytes", MaxArgsBytes)
	}
	for k, v := range u.Env {
		if !envRE.MatchString(k) {
			return fmt.Errorf("invalid environment variable name %q", clip(k))
		}
		if LoaderEnv(k) {
			return fmt.Errorf("environment variable %s changes how programs load code or find programs, and cannot be set for an upstream", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("environment variable %s: value contains NUL", k)
		}
		if err := notLiteralCredential("environment variable "+k, credentialEnvRE.MatchString(k), v); err != nil {
			return err
		}
	}
	return nil
}

// loaderPrefixes and loaderNames are environment variables (compared in
// upper case) that make a dynamic loader, a language runtime or a tool an
// MCP server commonly drives load other code, run another program, or
// find programs elsewhere.
var (
	loaderPrefixes = []string{"LD_", "DYLD_", "PYTHON", "PERL5", "MALLOC_", "LUA_", "GEM_", "NPM_CONFIG_", "GIT_CONFIG", "GIT_SSH", "BUNDLE_"}
	loaderNames    = map[string]bool{
		"PATH": true, "HOME": true, "ENV": true, "BASH_ENV": true, "SHELLOPTS": true, "BASHOPTS": true, "PS4": true, "IFS": true,
		"CDPATH": true, "PROMPT_COMMAND": true, "ZDOTDIR": true, "SHELL": true,
		"GCONV_PATH": true, "LOCPATH": true, "NLSPATH": true, "GLIBC_TUNABLES": true, "HOSTALIASES": true, "RESOLV_HOST_CONF": true,
		"NODE_OPTIONS": true, "NODE_PATH": true, "NODE_REPL_EXTERNAL_MODULE": true,
		"PERLLIB": true, "PERLIO": true, "RUBYOPT": true, "RUBYLIB": true, "PHPRC": true, "PHP_INI_SCAN_DIR": true, "TCLLIBPATH": true,
		"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true, "JDK_JAVA_OPTIONS": true, "JAVA_OPTIONS": true, "CLASSPATH": true,
		"DOTNET_STARTUP_HOOKS": true, "CORECLR_PROFILER_PATH": true, "R_PROFILE": true, "R_PROFILE_USER": true, "R_ENVIRON": true,
		"OPENSSL_CONF": true, "OPENSSL_ENGINES": true, "OPENSSL_MODULES": true,
		"GIT_EXEC_PATH": true, "GIT_ASKPASS": true, "SSH_ASKPASS": true, "GIT_PAGER": true, "GIT_EDITOR": true, "GIT_SEQUENCE_EDITOR": true,
		"GIT_EXTERNAL_DIFF": true, "GIT_PROXY_COMMAND": true, "GIT_TEMPLATE_DIR": true, "GIT_DIR": true,
		"PAGER": true, "EDITOR": true, "VISUAL": true, "BROWSER": true,
		"XDG_CONFIG_HOME": true, "XDG_CONFIG_DIRS": true, "XDG_DATA_HOME": true, "XDG_DATA_DIRS": true,
	}
)

// LoaderEnv reports whether an environment variable name changes how a
// program loads code or finds programs (LD_PRELOAD, NODE_OPTIONS, PATH…).
// The name is compared in any case: Linux's environment is case-sensitive,
// but a runtime that folds case must not be a way around the list.
func LoaderEnv(name string) bool {
	n := strings.ToUpper(name)
	if loaderNames[n] {
		return true
	}
	for _, p := range loaderPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// interpreters are programs that run code or other programs given as
// arguments (shells, launchers, script interpreters, tools with an exec
// option), by base name without a version suffix. One runs only if the
// operator names that exact file; an allowed directory does not allow it.
var interpreters = map[string]bool{
	"sh": true, "bash": true, "dash": true, "ash": true, "zsh": true, "ksh": true, "mksh": true, "pdksh": true, "oksh": true, "lksh": true,
	"yash": true, "posh": true, "fish": true, "csh": true, "tcsh": true, "rc": true, "es": true, "nu": true, "elvish": true, "xonsh": true,
	"pwsh": true, "powershell": true, "busybox": true, "toybox": true,
	"env": true, "sudo": true, "doas": true, "su": true, "runuser": true, "setsid": true, "nohup": true, "nice": true, "ionice": true,
	"timeout": true, "stdbuf": true, "chroot": true, "nsenter": true, "unshare": true, "xargs": true, "time": true, "strace": true,
	"ltrace": true, "gdb": true, "script": true, "flock": true, "watch": true, "systemd-run": true, "ssh": true, "socat": true,
	"python": true, "pypy": true, "perl": true, "ruby": true, "irb": true, "node": true, "nodejs": true, "deno": true, "bun": true,
	"php": true, "lua": true, "luajit": true, "tclsh": true, "wish": true, "expect": true, "awk": true, "gawk": true, "mawk": true,
	"nawk": true, "sed": true, "r": true, "rscript": true, "julia": true, "guile": true, "racket": true, "sbcl": true, "jshell": true,
	"groovy": true, "osascript": true, "make": true, "gmake": true, "vi": true, "vim": true, "nvim": true, "ex": true, "ed": true,
	"emacs": true, "git": true, "tar": true, "find": true, "npx": true, "npm": true, "uvx": true, "pipx": true, "java": true,
}

// Interpreter reports whether a program, by its file name, runs code given
// as an argument: "python3.12" and "bash5" are python and bash.
func Interpreter(path string) bool {
	n := strings.ToLower(filepath.Base(path))
	n = strings.TrimSuffix(n, ".exe")
	n = strings.TrimRight(n, "0123456789.-_")
	return interpreters[n]
}
