package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/identity"
)

func (e *env) rolesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "roles", Short: "Manage roles (named sets of grants)"}
	cmd.AddCommand(e.rolesCreateCmd(), e.rolesListCmd())
	return cmd
}

func (e *env) printRoles(roles ...adminapi.RoleView) error {
	t := newTable(e.stdout, "NAME", "GRANTS", "BUILTIN", "CREATED")
	for _, r := range roles {
		t.row(r.Name, list(r.Grants), yesno(r.Builtin), when(&r.CreatedAt))
	}
	return t.flush()
}

func (e *env) rolesCreateCmd() *cobra.Command {
	var in identity.NewRole
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create NAME --grant ACTION:RESOURCE [--grant ...]",
		Short: "Create a role",
		Long: `Create a role from grants ACTION:RESOURCE, where RESOURCE is a glob over tool
names ('*' any run of characters, '?' one), e.g. invoke:finance.* or discover:*.
Actions: ` + strings.Join(authz.Actions(), ", ") + `.
invoke implies discover; admin implies everything. read-audit, manage-identities,
manage-secrets and admin apply to the whole system and take the resource '*'.
You can only create roles whose grants you hold yourself.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			in.Name = a[0]
			if len(in.Grants) == 0 {
				return usageError("at least one --grant ACTION:RESOURCE is required")
			}
			var r adminapi.RoleView
			return e.call(cmd, "POST", "/roles", nil, in, &r, asJSON, func() error { return e.printRoles(r) })
		},
	}
	cmd.Flags().StringArrayVar(&in.Grants, "grant", nil, "grant ACTION:RESOURCE (repeatable)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) rolesListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List roles and their grants",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.RoleList
			return e.call(cmd, "GET", "/roles", nil, nil, &l, asJSON, func() error { return e.printRoles(l.Roles...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
