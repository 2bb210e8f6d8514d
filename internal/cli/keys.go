package cli

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/identity"
)

func (e *env) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage API keys"}
	cmd.AddCommand(e.keysCreateCmd(), e.keysListCmd(), e.keysRevokeCmd())
	return cmd
}

func (e *env) printKeys(keys ...adminapi.KeyView) error {
	t := newTable(e.stdout, "ID", "USER", "ENV", "STATUS", "SCOPE", "CREATED", "EXPIRES", "LAST USED")
	for _, k := range keys {
		scope := "(all of user's grants)"
		if k.Scope != nil {
			scope = list(k.Scope)
		}
		t.row(k.ID, k.User, k.Environment, k.Status, scope, when(&k.CreatedAt), when(k.ExpiresAt), when(k.LastUsedAt))
	}
	return t.flush()
}

func (e *env) keysCreateCmd() *cobra.Command {
	var in identity.NewKeyRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --user NAME [--env ENV] [--expires DURATION] [--scope ACTION:RESOURCE]...",
		Short: "Create an API key; it is printed once",
		Long: `Create an API key for a user. The key is printed once and stored only as a
keyed hash. --expires takes a duration such as 12h or 30d. --scope narrows the
key to a subset of the user's grants (repeatable); without it the key carries
all of them. --env puts the key in an environment (default "default"): its
calls get that environment's values of the secrets their upstreams use.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in.User == "" {
				return usageError("--user NAME is required")
			}
			if in.Environment != "" && !authn.ValidEnvironment(in.Environment) {
				return usageError("--env: %q is not an environment name (1–32 lower-case letters, digits and '-', starting with a letter)", in.Environment)
			}
			if in.ExpiresIn != "" {
				if _, err := identity.ParseLifetime(in.ExpiresIn); err != nil {
					return usageError("--expires: %v", err)
				}
			}
			var out adminapi.CreatedKey
			return e.call(cmd, "POST", "/keys", nil, in, &out, asJSON, func() error {
				if err := e.printKeys(out.Key); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "\nAPI key (shown once; store it safely):\n\n  %s\n", out.APIKey)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&in.User, "user", "", "user the key belongs to")
	cmd.Flags().StringVar(&in.ExpiresIn, "expires", "", "lifetime, e.g. 12h or 30d (default: never)")
	cmd.Flags().StringArrayVar(&in.Scope, "scope", nil, "narrow the key to this grant (repeatable)")
	cmd.Flags().StringVar(&in.Environment, "env", "", "the key's environment (default \"default\")")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) keysListCmd() *cobra.Command {
	var user string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--user NAME]",
		Short: "List API keys (never their secrets)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if user != "" {
				q.Set("user", user)
			}
			var l adminapi.KeyList
			return e.call(cmd, "GET", "/keys", q, nil, &l, asJSON, func() error { return e.printKeys(l.Keys...) })
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only this user's keys")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) keysRevokeCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revoke KEYID",
		Short: "Revoke an API key; it stops working on the next request",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var k adminapi.KeyView
			return e.call(cmd, "POST", "/keys/"+url.PathEscape(a[0])+"/revoke", nil, nil, &k, asJSON, func() error { return e.printKeys(k) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
