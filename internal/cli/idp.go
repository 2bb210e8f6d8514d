package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/identity"
)

func (e *env) idpCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "idp", Short: "Map identity-provider groups to roles, and link subjects to users",
		Long: `Users who sign in with an identity provider (serve --oidc-issuer) get the roles
their groups map to, from their next request on: 'idp map GROUP ROLE' gives the
members of GROUP (as the token's groups claim names it) the role, 'idp unmap'
takes it away again, whatever the lifetime of the tokens already issued.`}
	cmd.AddCommand(e.idpMapCmd(), e.idpUnmapCmd(), e.idpMappingsCmd(), e.idpLinkCmd(), e.idpLinksCmd())
	return cmd
}

func (e *env) printMappings(ms ...identity.GroupMapping) error {
	t := newTable(e.stdout, "GROUP", "ROLE", "CREATED", "BY")
	for _, m := range ms {
		t.row(safe(m.Group), safe(m.Role), when(&m.CreatedAt), safe(m.CreatedBy))
	}
	return t.flush()
}

func (e *env) idpMapCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "map GROUP ROLE",
		Short: "Give the members of an identity-provider group a role",
		Long:  "Give the members of GROUP a role. You can only map roles whose grants you hold yourself.",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var m identity.GroupMapping
			return e.call(cmd, "POST", "/idp/mappings", nil, adminapi.GroupMappingRequest{Group: a[0], Role: a[1]}, &m, asJSON,
				func() error { return e.printMappings(m) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) idpUnmapCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "unmap GROUP ROLE",
		Short: "Take a role away from the members of a group, from their next request on",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var out adminapi.GroupMappingRequest
			return e.call(cmd, "POST", "/idp/mappings/remove", nil, adminapi.GroupMappingRequest{Group: a[0], Role: a[1]}, &out, asJSON,
				func() error {
					_, err := fmt.Fprintf(e.stdout, "group %s no longer maps to role %s\n", safe(out.Group), safe(out.Role))
					return err
				})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) idpMappingsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mappings",
		Short: "List group-to-role mappings",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.GroupMappingList
			return e.call(cmd, "GET", "/idp/mappings", nil, nil, &l, asJSON, func() error { return e.printMappings(l.Mappings...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) printLinks(ls ...identity.SubjectLink) error {
	t := newTable(e.stdout, "USER", "ISSUER", "SUBJECT", "CREATED", "BY")
	for _, l := range ls {
		t.row(safe(l.User), safe(l.Issuer), safe(l.Subject), when(&l.CreatedAt), safe(l.CreatedBy))
	}
	return t.flush()
}

func (e *env) idpLinkCmd() *cobra.Command {
	var asJSON bool
	var in adminapi.SubjectLinkRequest
	cmd := &cobra.Command{
		Use:   "link USER SUBJECT --issuer URL",
		Short: "Let an identity provider's subject sign in as an existing user",
		Long: `Link SUBJECT (the sub claim of the provider's tokens) to USER: whoever signs
in as that subject acts as USER. This is how pre-created users sign in with
--oidc-users existing. You can only link users whose grants you hold yourself.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			in.User, in.Subject = a[0], a[1]
			if in.Issuer == "" {
				return usageError("--issuer URL is required")
			}
			var l identity.SubjectLink
			return e.call(cmd, "POST", "/idp/links", nil, in, &l, asJSON, func() error { return e.printLinks(l) })
		},
	}
	cmd.Flags().StringVar(&in.Issuer, "issuer", "", "the identity provider's issuer URL, as in serve --oidc-issuer")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) idpLinksCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "links",
		Short: "List which provider subjects sign in as which users",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.SubjectLinkList
			return e.call(cmd, "GET", "/idp/links", nil, nil, &l, asJSON, func() error { return e.printLinks(l.Links...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
