package cli

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/config"
)

func (e *env) configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Check a configuration file of serve"}
	c.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check a serve configuration file: exit 0 when valid, 2 naming the line of the first mistake",
		Long: `Check a configuration file of 'ostiary serve --config FILE' without starting
anything: strict YAML (one mapping; no duplicate keys, aliases or tags), every key
a flag of serve, every value one its flag accepts, and the settings valid together
(the data directory may be left to the command line). The environment is not
consulted: this checks the file alone.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := e.checkConfig(a[0])
			if err != nil {
				return usageError("%v", err)
			}
			_, err = fmt.Fprintf(e.stdout, "%s: valid (%d settings)\n", a[0], n)
			return err
		},
	})
	return c
}

// checkConfig applies the file to a fresh serve command, the environment
// left out, and validates the result.
func (e *env) checkConfig(file string) (int, error) {
	settings, err := config.ReadFile(file)
	if err != nil {
		return 0, err
	}
	bare := *e
	bare.getenv = func(string) string { return "" }
	serve, flags := bare.newServe()
	if err := bare.applySettings(serve, file, settings); err != nil {
		return 0, err
	}
	cfg, err := bare.serverConfig(serve, *flags)
	if err != nil {
		return 0, &config.FileError{File: file, Msg: err.Error()}
	}
	if err := cfg.ValidateSettings(); err != nil {
		return 0, atLines(file, settings, err)
	}
	return len(settings), nil
}

var flagRef = regexp.MustCompile(`--([a-z0-9-]+)`)

// atLines gives each validation error the line of the key it names.
func atLines(file string, settings []config.Setting, err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		fe := &config.FileError{File: file, Msg: e.Error()}
		if m := flagRef.FindStringSubmatch(e.Error()); m != nil {
			for _, s := range settings {
				if s.Key == m[1] {
					fe.Line = s.Line
				}
			}
		}
		out = append(out, fe)
	}
	return errors.Join(out...)
}
