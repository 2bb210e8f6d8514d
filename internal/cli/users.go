package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/console"
	"github.com/ostiary/ostiary/internal/identity"
)

func (e *env) usersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage users and service accounts"}
	cmd.AddCommand(e.usersCreateCmd(), e.usersListCmd(), e.usersShowCmd(),
		e.usersSetDisabledCmd("disable", true), e.usersSetDisabledCmd("enable", false), e.usersSetRolesCmd(), e.usersSetPasswordCmd())
	return cmd
}

func (e *env) printUsers(users ...adminapi.UserView) error {
	t := newTable(e.stdout, "NAME", "KIND", "STATUS", "ROLES", "CREATED", "BY")
	for _, u := range users {
		kind, status := "human", "enabled"
		if u.Service {
			kind = "service"
			if u.Owner != "" {
				kind += " (owner " + u.Owner + ")"
			}
		}
		if u.Disabled {
			status = "disabled"
		}
		t.row(u.Name, kind, status, list(u.Roles), when(&u.CreatedAt), u.CreatedBy)
	}
	return t.flush()
}

func (e *env) usersCreateCmd() *cobra.Command {
	var in identity.NewUser
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create NAME [--service [--owner USER]] [--role ROLE]...",
		Short: "Create a user (or, with --service, a service account)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			in.Name = a[0]
			if in.Owner != "" && !in.Service {
				return usageError("--owner names the person who owns a service account: use it with --service")
			}
			var u adminapi.UserView
			return e.call(cmd, "POST", "/users", nil, in, &u, asJSON, func() error { return e.printUsers(u) })
		},
	}
	cmd.Flags().BoolVar(&in.Service, "service", false, "create a service account (an automation identity)")
	cmd.Flags().StringArrayVar(&in.Roles, "role", nil, "role to hold (repeatable)")
	cmd.Flags().StringVar(&in.Owner, "owner", "", "the person who owns the service account (they cannot approve its requests)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) usersListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.UserList
			return e.call(cmd, "GET", "/users", nil, nil, &l, asJSON, func() error { return e.printUsers(l.Users...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) usersShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one user",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var u adminapi.UserView
			return e.call(cmd, "GET", "/users/"+url.PathEscape(a[0]), nil, nil, &u, asJSON, func() error { return e.printUsers(u) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) usersSetDisabledCmd(verb string, disable bool) *cobra.Command {
	short := "Enable a disabled user"
	if disable {
		short = "Disable a user: all their keys stop working on the next request"
	}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var u adminapi.UserView
			return e.call(cmd, "POST", "/users/"+url.PathEscape(a[0])+"/"+verb, nil, nil, &u, asJSON, func() error { return e.printUsers(u) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) usersSetRolesCmd() *cobra.Command {
	var roles []string
	var asJSON bool
	var reason string
	cmd := &cobra.Command{
		Use:   "set-roles NAME [--role ROLE]...",
		Short: "Replace a user's roles (none given: no roles)",
		Long: `Replace a user's roles with those given (none: the user keeps no role). You
must hold every grant of the roles taken away and of those given.

Taking away the grants that reach secret values (manage-secrets, admin, or
manage-tools:*, which can point an upstream at another server) marks every
secret for rotation ('ostiary secrets list --overdue'), on this change's
record; so does disabling a user.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var u struct {
				adminapi.UserView
				proposedAnswer
			}
			return e.call(cmd, "POST", "/users/"+url.PathEscape(a[0])+"/roles", nil, adminapi.SetRoles{Roles: roles, Reason: reason}, &u, asJSON, func() error {
				if u.Proposal != nil {
					return e.printProposed(u.Proposal)
				}
				return e.printUsers(u.UserView)
			})
		},
	}
	cmd.Flags().StringArrayVar(&roles, "role", nil, "a role the user holds from now on (repeatable)")
	reasonFlag(cmd, &reason)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) usersSetPasswordCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set-password NAME",
		Short: "Set the password a human user signs in to the web console with (read from stdin)",
		Long: `Set the password NAME signs in to the web console (/console) with. The password
is read from standard input (one line; never from the command line, where other
users of the machine could see it), at least 12 bytes. Only its argon2id hash is
stored; the change is audited without it. You must hold every grant NAME holds.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			b, err := io.ReadAll(io.LimitReader(e.stdin, console.MaxPasswordLen+2))
			if err != nil {
				return fmt.Errorf("reading the password from stdin: %w", err)
			}
			pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if strings.ContainsAny(pw, "\r\n") {
				return errors.New("the password must be one line on stdin")
			}
			if err := console.CheckPassword(pw); err != nil {
				return err
			}
			var out map[string]string
			return e.call(cmd, "PUT", "/users/"+url.PathEscape(a[0])+"/console-password", nil, adminapi.SetConsolePassword{Password: pw}, &out, false, func() error {
				_, err := fmt.Fprintf(e.stdout, "console password set for %s\n", a[0])
				return err
			})
		},
	}
	return cmd
}
