package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/vault"
)

func (e *env) secretsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Manage upstream credentials in the vault (values are never shown)"}
	cmd.AddCommand(e.secretsSetCmd("set"), e.secretsSetCmd("rotate"), e.secretsListCmd(), e.secretsRewrapCmd())
	return cmd
}

// readValue reads a secret value from stdin, without a trailing newline.
func (e *env) readValue() (string, error) {
	b, err := io.ReadAll(io.LimitReader(e.stdin, vault.MaxValue+1))
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", usageError("the secret value is read from standard input, which was empty")
	}
	return v, nil
}

func (e *env) secretsSetCmd(verb string) *cobra.Command {
	var upstreams []string
	var environment string
	var asJSON bool
	short := "Store a secret (its value read from standard input), usable by the named upstreams"
	if verb == "rotate" {
		short = "Store a new version of a secret (value from standard input); same upstreams unless --upstream is given"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME [--env ENV] [--upstream U]...",
		Short: short,
		Long: short + `.
Refer to it in an upstream's --header or --env value as ${secret:NAME}; it is
resolved at the last moment on each request, every access is audited, and its
value is redacted from anything the upstream sends back.

A secret has a value (and versions) per environment: --env ENV (default
"default") sets the one that calls made with keys of ENV receive
('ostiary keys create --env ENV'). A key whose environment has no value
cannot reach the upstreams that need it.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if environment == "" {
				environment = authn.DefaultEnvironment
			}
			if !authn.ValidEnvironment(environment) {
				return usageError("--env: %q is not an environment name (1–32 lower-case letters, digits and '-', starting with a letter)", environment)
			}
			if verb == "set" && len(upstreams) == 0 {
				return usageError("--upstream is required: name where the secret may be injected")
			}
			if verb == "rotate" && len(upstreams) == 0 {
				var l adminapi.SecretList
				c, err := e.newClient()
				if err != nil {
					return err
				}
				if err := c.do(cmd.Context(), "GET", "/secrets", nil, nil, &l, nil); err != nil {
					return err
				}
				for _, s := range l.Secrets {
					if s.Name == a[0] && s.Environment == environment {
						upstreams = s.Upstreams
					}
				}
				if len(upstreams) == 0 {
					return fmt.Errorf("secret %q has no value in environment %q: use 'secrets set'", a[0], environment)
				}
			}
			value, err := e.readValue()
			if err != nil {
				return err
			}
			var s vault.Secret
			return e.call(cmd, "PUT", "/secrets/"+url.PathEscape(a[0]), nil, adminapi.SetSecret{Value: value, Upstreams: upstreams, Environment: environment}, &s, asJSON, func() error {
				return e.printSecrets(s)
			})
		},
	}
	cmd.Flags().StringArrayVar(&upstreams, "upstream", nil, "an upstream the secret may be injected into (repeatable)")
	cmd.Flags().StringVar(&environment, "env", "", "the environment whose value this is (default \"default\")")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) printSecrets(ss ...vault.Secret) error {
	t := newTable(e.stdout, "NAME", "ENV", "VERSION", "UPSTREAMS", "CREATED", "BY", "LAST ACCESS")
	for _, s := range ss {
		t.row(s.Name, s.Environment, strconv.Itoa(s.Version), list(s.Upstreams), when(&s.CreatedAt), s.CreatedBy, when(&s.LastAccessed))
	}
	return t.flush()
}

func (e *env) secretsListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List secrets: names, versions, scopes and last access, never values",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.SecretList
			return e.call(cmd, "GET", "/secrets", nil, nil, &l, asJSON, func() error { return e.printSecrets(l.Secrets...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) secretsRewrapCmd() *cobra.Command {
	var file string
	var retire, asJSON bool
	cmd := &cobra.Command{
		Use:   "rewrap --new-master-key-file FILE [--retire-others]",
		Short: "Rotate the vault master key without downtime",
		Long: `Rotate the vault master key without downtime. The vault's data key is wrapped
under the key in FILE (64 hex characters; FILE is created with a fresh random
key, mode 0600, if it does not exist). Secret values are not re-encrypted.

  1. ostiary secrets rewrap --new-master-key-file NEW
       both the old and the new master key now open the vault
  2. point OSTIARY_MASTER_KEY_FILE (or --master-key-file) of every server at
     NEW and restart them when convenient
  3. ostiary secrets rewrap --new-master-key-file NEW --retire-others
       only NEW opens the vault; the old key can be destroyed

Needs the admin grant; each step is audited (never the key).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError("--new-master-key-file is required")
			}
			key, created, err := masterKeyFile(file)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(e.stderr, "wrote a new master key to %s\n", file)
			}
			var out adminapi.Rewrapped
			return e.call(cmd, "POST", "/vault/rewrap", nil, adminapi.Rewrap{NewMasterKey: key, RetireOthers: retire}, &out, asJSON, func() error {
				fmt.Fprintf(e.stdout, "vault data key wrapped under %s; %d master key(s) open the vault\n", file, out.MasterKeys)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&file, "new-master-key-file", "", "`FILE` holding the new master key (created if missing)")
	cmd.Flags().BoolVar(&retire, "retire-others", false, "delete every other wrapping: only the new key will open the vault")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// masterKeyFile reads a hex master key, first creating the file with a
// fresh random key if it does not exist.
func masterKeyFile(path string) (string, bool, error) {
	created, err := app.EnsureMasterKeyFile(path)
	if err != nil {
		return "", false, usageError("--new-master-key-file: %v", err)
	}
	key, err := app.ReadMasterKey(path)
	if err != nil {
		return "", false, usageError("--new-master-key-file: %v", err)
	}
	defer clear(key)
	return hex.EncodeToString(key), created, nil
}
