package cli

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/killswitch"
)

func (e *env) killswitchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "killswitch", Short: "Stop a tool, upstream, user, key or everything at once (incident response)"}
	cmd.AddCommand(e.killEngageCmd(), e.killReleaseCmd(), e.killListCmd())
	return cmd
}

func (e *env) printSwitches(sws ...killswitch.Switch) error {
	t := newTable(e.stdout, "ID", "KIND", "TARGET", "STATE", "ENGAGED", "BY", "REASON")
	for _, sw := range sws {
		state := "engaged"
		if !sw.Active() {
			state = "released by " + sw.ReleasedBy
		}
		t.row(sw.ID, string(sw.Kind), sw.Target, state, when(&sw.EngagedAt), sw.EngagedBy, sw.Reason)
	}
	return t.flush()
}

func (e *env) killEngageCmd() *cobra.Command {
	var tool, up, user, key, reason string
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "engage (--tool T | --upstream U | --user NAME | --key KEYID | --all) --reason TEXT",
		Short: "Engage a kill switch: effective on the next request, cuts calls in flight",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := adminapi.NewKillSwitch{Reason: reason}
			n := 0
			for _, c := range []struct {
				v    string
				kind killswitch.Kind
			}{{tool, killswitch.Tool}, {up, killswitch.Upstream}, {user, killswitch.User}, {key, killswitch.Key}} {
				if c.v != "" {
					in.Kind, in.Target = c.kind, c.v
					n++
				}
			}
			if all {
				in.Kind = killswitch.All
				n++
			}
			if n != 1 {
				return usageError("give exactly one of --tool, --upstream, --user, --key and --all")
			}
			if reason == "" {
				return usageError("--reason is required")
			}
			var sw killswitch.Switch
			return e.call(cmd, "POST", "/killswitches", nil, in, &sw, asJSON, func() error { return e.printSwitches(sw) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&tool, "tool", "", "a tool (or a glob of tools, e.g. finance.*)")
	f.StringVar(&up, "upstream", "", "every tool, prompt and resource of an upstream")
	f.StringVar(&user, "user", "", "every request of a user, through any key")
	f.StringVar(&key, "key", "", "every request made with one API key")
	f.BoolVar(&all, "all", false, "every MCP request")
	f.StringVar(&reason, "reason", "", "why (required; recorded)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) killReleaseCmd() *cobra.Command {
	var reason string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "release ID --reason TEXT",
		Short: "Release a kill switch",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if reason == "" {
				return usageError("--reason is required")
			}
			var sw killswitch.Switch
			return e.call(cmd, "POST", "/killswitches/"+url.PathEscape(a[0])+"/release", nil, adminapi.Release{Reason: reason}, &sw, asJSON, func() error {
				fmt.Fprintf(e.stdout, "released %s (%s %s)\n", safe(sw.ID), safe(string(sw.Kind)), safe(sw.Target))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) killListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List kill switches, engaged and released",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.KillSwitchList
			return e.call(cmd, "GET", "/killswitches", nil, nil, &l, asJSON, func() error { return e.printSwitches(l.KillSwitches...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
