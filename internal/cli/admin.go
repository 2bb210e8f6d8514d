package cli

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
)

// call runs one admin API request. With --json it prints the server's
// answer; otherwise it decodes it into out and calls render.
func (e *env) call(cmd *cobra.Command, method, path string, query url.Values, in, out any, asJSON bool, render func() error) error {
	c, err := e.newClient()
	if err != nil {
		return err
	}
	var raw []byte
	if err := c.do(cmd.Context(), method, path, query, in, out, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, raw)
	}
	return render()
}

func jsonFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "json", false, "print machine-readable output")
}

func (e *env) whoamiCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the API key in OSTIARY_TOKEN belongs to and what it may do",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var w adminapi.Whoami
			return e.call(cmd, "GET", "/whoami", nil, nil, &w, asJSON, func() error {
				kind := "human"
				if w.Service {
					kind = "service account"
				}
				fmt.Fprintf(e.stdout, "user:   %s (%s)\nkey:    %s\nenv:    %s\nroles:  %s\ngrants: %s\n", safe(w.User), kind, safe(w.KeyID), safe(w.Environment), safe(list(w.Roles)), safe(list(w.Grants)))
				if w.Scope != nil {
					fmt.Fprintf(e.stdout, "scope:  %s\n", safe(list(w.Scope)))
				}
				return nil
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
