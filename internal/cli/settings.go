package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ostiary/ostiary/internal/config"
)

// The settings of serve (and demo) are its flags: every flag is also a key
// of the configuration file (serve --config) and an environment variable,
// both derived from the flag set, so a flag added later is configurable the
// three ways without more code. Precedence: flags, then OSTIARY_* variables,
// then the file, then the defaults.
//
// A key is the flag's name (listen, rate-key); the variable is OSTIARY_ and
// the name in capitals with '_' for '-' (OSTIARY_RATE_KEY). A repeatable
// flag takes a YAML list in the file and a separated list in its variable
// (',' unless the flag says otherwise).
const (
	// annotEnv names extra environment variables of a flag (older names).
	annotEnv = "ostiary-env"
	// annotEnvSep is the list separator of a repeatable flag's variable.
	annotEnvSep = "ostiary-env-sep"
)

// notSettings are flags that configure nothing of the server.
var notSettings = map[string]bool{"help": true, "config": true}

// envNames are the variables that set flag f, the derived name first.
func envNames(f *pflag.Flag) []string {
	return append([]string{"OSTIARY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))}, f.Annotations[annotEnv]...)
}

func repeatable(f *pflag.Flag) bool {
	_, ok := f.Value.(pflag.SliceValue)
	return ok
}

// sensitive reports whether a flag's value must not be quoted in an error
// (a PIN, a password, a token; a key file's path is not secret).
func sensitive(name string) bool {
	for _, w := range []string{"pin", "password", "secret", "token", "passphrase"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return strings.HasSuffix(name, "-key") && !strings.HasPrefix(name, "tls-") && !strings.HasPrefix(name, "rate-")
}

// setFlag gives flag f the values (several for a repeatable flag) and
// marks it set.
func setFlag(fs *pflag.FlagSet, f *pflag.Flag, values []string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		// Replace, not Set: Set would split a string-slice element on commas.
		if err := sv.Replace(values); err != nil {
			return err
		}
		f.Changed = true
		return nil
	}
	if len(values) != 1 {
		return errors.New("want one value")
	}
	return fs.Set(f.Name, values[0])
}

// valueError hides the value of a sensitive flag from an error message.
func valueError(f *pflag.Flag, values []string, err error) string {
	msg := err.Error()
	if sensitive(f.Name) {
		for _, v := range values {
			if v != "" {
				msg = strings.ReplaceAll(msg, v, "[redacted]")
			}
		}
	}
	return msg
}

// applySettings fills every flag of cmd the command line left unset from
// its environment variable, or else from the configuration file's
// settings (file names it in messages). It refuses a key that is not a
// flag, a list for a single-valued flag, a single value for a repeatable
// one, and any value the flag itself refuses, naming the line.
func (e *env) applySettings(cmd *cobra.Command, file string, settings []config.Setting) error {
	fs := cmd.Flags()
	byKey := map[string]config.Setting{}
	for _, s := range settings {
		f := fs.Lookup(s.Key)
		if f == nil || notSettings[s.Key] {
			return &config.FileError{File: file, Line: s.Line, Msg: unknownKey(fs, s.Key)}
		}
		if rep := repeatable(f); rep && !s.List {
			return &config.FileError{File: file, Line: s.Line, Msg: fmt.Sprintf("%s is repeatable: give a list, e.g. '%s: [%s]' (or one '- item' per line)", s.Key, s.Key, quoteYAML(s.Values[0]))}
		} else if !rep && s.List {
			return &config.FileError{File: file, Line: s.Line, Msg: fmt.Sprintf("%s takes one value, not a list", s.Key)}
		}
		byKey[s.Key] = s
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || notSettings[f.Name] {
			return
		}
		for _, name := range envNames(f) {
			v := e.getenv(name)
			if v == "" {
				continue
			}
			values := []string{v}
			if repeatable(f) {
				sep := ","
				if s := f.Annotations[annotEnvSep]; len(s) > 0 {
					sep = s[0]
				}
				values = strings.Split(v, sep)
			}
			if serr := setFlag(fs, f, values); serr != nil {
				err = fmt.Errorf("%s: %s", name, valueError(f, values, serr))
			}
			return
		}
		if s, ok := byKey[f.Name]; ok {
			if serr := setFlag(fs, f, s.Values); serr != nil {
				err = &config.FileError{File: file, Line: s.Line, Msg: f.Name + ": " + valueError(f, s.Values, serr)}
			}
		}
	})
	return err
}

// unknownKey names the nearest keys to a mistyped one.
func unknownKey(fs *pflag.FlagSet, key string) string {
	type cand struct {
		name string
		d    int
	}
	var near []cand
	fs.VisitAll(func(f *pflag.Flag) {
		if notSettings[f.Name] {
			return
		}
		if d := editDistance(key, f.Name); d <= 2 || strings.Contains(f.Name, key) || strings.Contains(key, f.Name) {
			near = append(near, cand{f.Name, d})
		}
	})
	sort.Slice(near, func(i, j int) bool {
		return near[i].d < near[j].d || near[i].d == near[j].d && near[i].name < near[j].name
	})
	msg := fmt.Sprintf("unknown key %q (keys are the flags of 'ostiary serve', without the dashes)", key)
	if len(near) > 0 {
		names := make([]string, 0, 3)
		for i := 0; i < len(near) && i < 3; i++ {
			names = append(names, near[i].name)
		}
		msg += "; did you mean " + strings.Join(names, " or ") + "?"
	}
	return msg
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func quoteYAML(s string) string {
	if strings.ContainsAny(s, ":#,[]{}'\" ") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return s
}
