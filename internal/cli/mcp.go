package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/demo"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// mcpCmd is a small MCP client (the official SDK) for trying the gateway
// from a terminal.
func (e *env) mcpCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "mcp", Short: "Call the gateway as an MCP client would (OSTIARY_ADDR, OSTIARY_TOKEN)"}
	var version string
	cmd.PersistentFlags().StringVar(&version, "protocol", "", "MCP protocol version to speak (default 2026-07-28; e.g. 2025-11-25)")
	cmd.AddCommand(e.mcpToolsCmd(&version), e.mcpCallCmd(&version))
	return cmd
}

// mcpSession connects to the gateway; progress notifications go to onProgress.
func (e *env) mcpSession(ctx context.Context, version string, onProgress func(string)) (*mcp.ClientSession, error) {
	c, err := e.newClient()
	if err != nil {
		return nil, err
	}
	base, err := e.transport()
	if err != nil {
		return nil, err
	}
	transport := &mcp.StreamableClientTransport{
		Endpoint:   c.base.String() + "/mcp",
		HTTPClient: &http.Client{Timeout: 5 * time.Minute, Transport: bearerTransport{token: c.token, base: base}, CheckRedirect: noRedirects},
		MaxRetries: -1,
	}
	// Progress (a call waiting for approval, a long job) goes to the
	// status line on stderr, so stdout stays the result.
	client := mcp.NewClient(&mcp.Implementation{Name: "ostiary-cli", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			if onProgress == nil {
				return
			}
			msg := safe(r.Params.Message)
			if r.Params.Total > 0 {
				msg = strings.TrimSpace(fmt.Sprintf("%s %g/%g", msg, r.Params.Progress, r.Params.Total))
			}
			if msg != "" {
				onProgress(msg)
			}
		}})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := client.Connect(cctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s/mcp: %w", c.base, err)
	}
	return cs, nil
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func (e *env) mcpToolsCmd(version *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "List the tools your key may see",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := e.mcpSession(cmd.Context(), *version, nil)
			if err != nil {
				return err
			}
			defer cs.Close()
			res, err := cs.ListTools(cmd.Context(), nil)
			if err != nil {
				return err
			}
			if asJSON {
				return encodeJSON(e.stdout, res)
			}
			t := newTable(e.stdout, "TOOL", "DESCRIPTION")
			for _, tool := range res.Tools {
				t.row(tool.Name, tool.Description)
			}
			return t.flush()
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) mcpCallCmd(version *string) *cobra.Command {
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "call TOOL [ARGUMENTS-JSON]",
		Short: "Call a tool, e.g. ostiary mcp call shop.lookup_order '{\"order_id\":\"A-1001\"}'",
		Args:  args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			args := map[string]any{}
			if len(a) == 2 {
				if err := strictjson.Decode([]byte(a[1]), &args); err != nil {
					return usageError("ARGUMENTS-JSON: %v", err)
				}
			}
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			p := e.startProgress("calling " + safe(a[0]))
			defer p.end()
			cs, err := e.mcpSession(ctx, *version, p.notify)
			if err != nil {
				return timedOut(ctx, err, "")
			}
			defer cs.Close()
			params := &mcp.CallToolParams{Name: a[0], Arguments: args}
			params.SetProgressToken("ostiary-cli")
			res, err := cs.CallTool(ctx, params)
			if err != nil {
				return timedOut(ctx, err, "; the call was cancelled (the gateway cancels it upstream)")
			}
			p.end()
			if asJSON {
				if err := encodeJSON(e.stdout, res); err != nil {
					return err
				}
			} else {
				for _, c := range res.Content {
					if tc, ok := c.(*mcp.TextContent); ok {
						fmt.Fprintln(e.stdout, safeText(tc.Text))
					}
				}
			}
			if res.IsError {
				return fmt.Errorf("the tool reported an error")
			}
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up and cancel the call after this long, e.g. 30s (default: no bound of the CLI's own)")
	return cmd
}

// demoUpstreamCmd serves the demo shop over stdio; 'ostiary demo' registers
// it as an upstream.
func (e *env) demoUpstreamCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "demo-upstream",
		Short:  "Serve the demo shop MCP server on stdin/stdout",
		Hidden: true,
		Args:   args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.ServeStdio(cmd.Context())
		},
	}
}
