package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// StdioAllow is the operator's list of the programs stdio upstreams may
// run, fixed when the server starts. An entry is an absolute path:
//
//   - a file allows exactly that program (an interpreter included);
//   - a directory (a path ending in "/", or naming a directory) allows the
//     programs directly inside it, not those in its subdirectories, and
//     never an interpreter (see Interpreter): that needs its own entry.
//
// Symbolic links are resolved when a command is checked, in the entry and
// in the command, so a command whose real file lies outside an allowed
// directory (a "..", or a link inside the directory to /bin/sh) is refused,
// and the process is started from the real file that was checked.
//
// The zero value and nil allow nothing.
type StdioAllow struct {
	entries []allowEntry
}

type allowEntry struct {
	path string // absolute, cleaned, as the operator gave it
	dir  bool
}

// systemDirs hold general-purpose tools (cp, curl, tar…) that together are
// a shell: they can be allowed one by one, not as a directory.
var systemDirs = map[string]bool{"/": true, "/bin": true, "/sbin": true, "/usr": true, "/usr/bin": true, "/usr/sbin": true,
	"/usr/local": true, "/usr/local/bin": true, "/usr/local/sbin": true, "/usr/libexec": true, "/etc": true, "/tmp": true, "/var/tmp": true}

// NewStdioAllow checks the operator's entries: each absolute, existing, a
// directory if it ends in "/", not writable by everyone, not a system
// binary directory, and, for a file, an executable regular file. Errors
// name the flag.
func NewStdioAllow(paths []string) (*StdioAllow, error) {
	a := &StdioAllow{}
	var errs []error
	for _, p := range paths {
		e, err := newAllowEntry(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("--stdio-allow %q: %w", p, err))
			continue
		}
		a.entries = append(a.entries, e)
	}
	return a, errors.Join(errs...)
}

func newAllowEntry(p string) (allowEntry, error) {
	if !filepath.IsAbs(p) {
		return allowEntry{}, errors.New("want an absolute path")
	}
	e := allowEntry{path: filepath.Clean(p), dir: strings.HasSuffix(p, "/")}
	real, err := filepath.EvalSymlinks(e.path)
	if err != nil {
		return e, errors.New("no such file or directory")
	}
	fi, err := os.Stat(real)
	if err != nil {
		return e, err
	}
	switch {
	case e.dir && !fi.IsDir():
		return e, errors.New("ends in '/' but is not a directory")
	case fi.Mode().Perm()&0o002 != 0:
		return e, errors.New("is writable by everyone: anyone on the host could place a program there")
	case fi.IsDir() && systemDirs[real]:
		return e, fmt.Errorf("%s holds general-purpose tools that together are a shell: allow the programs you mean one by one", real)
	case fi.IsDir():
		e.dir = true
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return e, errors.New("not an executable file")
	}
	return e, nil
}

// Entries returns the entries as given (cleaned), directories ending in
// "/".
func (a *StdioAllow) Entries() []string {
	var out []string
	if a == nil {
		return out
	}
	for _, e := range a.entries {
		if e.dir && e.path != "/" {
			out = append(out, e.path+"/")
		} else {
			out = append(out, e.path)
		}
	}
	return out
}

// CommandError is a stdio command this server will not start.
type CommandError struct {
	Command string
	Reason  string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("command %s is not allowed: %s", clip(e.Command), e.Reason)
}

// RefusedCommand returns the message of a refused stdio command in err's
// chain.
func RefusedCommand(err error) (string, bool) {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.Error(), true
	}
	return "", false
}

const allowHint = "the operator allows programs when starting the server (ostiary serve --stdio-allow PATH, or OSTIARY_STDIO_ALLOW)"

// Check returns the real file that command (a stdio upstream's program)
// names if the list allows it, or a *CommandError saying why not.
func (a *StdioAllow) Check(command string) (string, error) {
	refuse := func(format string, args ...any) (string, error) {
		return "", &CommandError{Command: command, Reason: fmt.Sprintf(format, args...)}
	}
	if !filepath.IsAbs(command) || filepath.Clean(command) != command {
		return refuse("want a clean absolute path")
	}
	real, err := filepath.EvalSymlinks(command)
	if err != nil {
		return refuse("no such file")
	}
	if fi, err := os.Stat(real); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return refuse("not an executable file")
	}
	shown := command
	if real != command {
		shown = command + " (" + real + ")"
	}
	inDir := false
	if a != nil {
		for _, e := range a.entries {
			allowed, err := filepath.EvalSymlinks(e.path)
			if err != nil {
				continue // gone since the start: allows nothing
			}
			if !e.dir && allowed == real {
				return real, nil
			}
			if e.dir && filepath.Dir(real) == allowed {
				if !Interpreter(real) && !Interpreter(command) {
					return real, nil
				}
				inDir = true
			}
		}
	}
	if inDir {
		return refuse("%s runs code given as arguments (a shell or interpreter), which an allowed directory does not allow: the operator must name this exact file with --stdio-allow", shown)
	}
	return refuse("%s is not on this server's list of stdio programs: %s", shown, allowHint)
}
