// Package cli is the ostiary command line. init, serve, demo and audit
// verify work on local files; every other command is a client of the admin
// API (OSTIARY_ADDR, OSTIARY_TOKEN), so admin work is itself authenticated,
// authorized and audited.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/app"
)

// Exit codes. Every error a command returns maps to exactly one of them:
// an exitError carries its own code, a usageErr (cobra's argument and flag
// errors, unknown commands) is ExitUsage, anything else is ExitError. A
// command whose server answered but reported that the operation failed
// (an upstream that could not be listed, a tool that reported an error)
// returns an error too, after printing what it was told.
const (
	ExitOK       = 0
	ExitError    = 1 // the command failed
	ExitUsage    = 2 // bad command line
	ExitTampered = 3 // audit verify found the chain broken, or not signed by the trusted key
)

// env is everything a command may read from outside its arguments.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	tty            func(io.Writer) bool // whether progress may be shown on it
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// Run runs the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return (&env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, tty: isTerminal}).run(ctx, args)
}

func (e *env) run(ctx context.Context, args []string) int {
	stderr := e.stderr
	root := e.root()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "ostiary: %s\n", safeText(err.Error())) // server messages can quote what a client sent
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsage(err) {
		return ExitUsage
	}
	return ExitError
}

// isUsage recognises cobra's own argument and flag errors.
func isUsage(err error) bool {
	var ue *usageErr
	return errors.As(err, &ue)
}

type usageErr struct{ error }

func (u *usageErr) Unwrap() error { return u.error }

func (e *env) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "ostiary",
		Short: "Ostiary: the governed gateway between AI agents and the tools they may use",
		Long: `Ostiary authenticates, authorizes, audits and governs every request an AI agent makes.

Local commands:   init, serve, demo, audit verify, audit reindex, evidence verify, policy test,
                  config check, completion
Admin commands:   users, roles, idp, keys, upstreams, tools, secrets, policy, approvals, alerts, reviews, killswitch,
                  audit query, evidence export, whoami
MCP client:       mcp tools, mcp call
                  (these talk to a running server: set OSTIARY_ADDR and OSTIARY_TOKEN,
                  or sign in with 'ostiary login --client-id ID')`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       app.Version,
	}
	root.SetFlagErrorFunc(usage)
	// Before InitDefaultCompletionCmd, which takes the output as it is then.
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.AddCommand(e.initCmd(), e.serveCmd(), e.demoCmd(), e.loginCmd(), e.logoutCmd(), e.usersCmd(), e.rolesCmd(), e.idpCmd(), e.keysCmd(), e.auditCmd(), e.evidenceCmd(), e.whoamiCmd(),
		e.upstreamsCmd(), e.toolsCmd(), e.killswitchCmd(), e.secretsCmd(), e.policyCmd(), e.proposalsCmd(), e.approvalsCmd(), e.alertsCmd(), e.reviewsCmd(), e.mcpCmd(), e.demoUpstreamCmd(),
		e.versionCmd(), e.configCmd())
	// cobra adds these when it runs; add them now so that groupCommands sees them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	groupCommands(root)
	return root
}

// groupCommands makes every command that only groups others (root, users,
// audit, …) refuse an unknown subcommand as a usage error; left to cobra,
// 'ostiary users lst' would print the help and exit 0. Given no
// subcommand, a group prints its help.
func groupCommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		groupCommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	c.Args = args(func(cmd *cobra.Command, a []string) error {
		if len(a) == 0 {
			return nil
		}
		hint := ""
		if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
			hint = fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
		}
		return fmt.Errorf("unknown command %q for %q%s", a[0], cmd.CommandPath(), hint)
	})
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

func (e *env) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Ostiary's version",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(e.stdout, "ostiary version %s\n", app.Version)
			return err
		},
	}
}

// args wraps a cobra positional-argument validator so its failures are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usage(cmd, err)
		}
		return nil
	}
}

// usage marks err as a command-line mistake and points at the help.
func usage(cmd *cobra.Command, err error) error {
	return &usageErr{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
}
