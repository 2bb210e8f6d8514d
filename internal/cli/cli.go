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
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/app"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1 // the command failed
	ExitUsage    = 2 // bad command line
	ExitTampered = 3 // audit verify found the chain broken
)

// env is everything a command may read from outside its arguments.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
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
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	root := e.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
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

Local commands:   init, serve, demo, audit verify, policy test
Admin commands:   users, roles, keys, upstreams, tools, secrets, policy, approvals, killswitch,
                  audit query, whoami
MCP client:       mcp tools, mcp call
                  (these talk to a running server: set OSTIARY_ADDR and OSTIARY_TOKEN)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       app.Version,
	}
	root.SetFlagErrorFunc(usage)
	root.AddCommand(e.initCmd(), e.serveCmd(), e.demoCmd(), e.usersCmd(), e.rolesCmd(), e.keysCmd(), e.auditCmd(), e.whoamiCmd(),
		e.upstreamsCmd(), e.toolsCmd(), e.killswitchCmd(), e.secretsCmd(), e.policyCmd(), e.approvalsCmd(), e.mcpCmd(), e.demoUpstreamCmd())
	return root
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
