package cli

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

func (e *env) upstreamsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "upstreams", Short: "Manage the MCP servers and HTTP APIs behind Ostiary"}
	cmd.AddCommand(e.upstreamsAddCmd(), e.upstreamsListCmd(), e.upstreamsRemoveCmd(), e.upstreamsSyncCmd())
	return cmd
}

// keyValues parses repeated K=V flags.
func keyValues(flag string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError("--%s %q: want NAME=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// syncFailed is the error of a sync that could not list the upstream:
// the command reports it and exits ExitError, after printing what the
// server answered.
func syncFailed(r catalog.SyncReport) error {
	if r.Error == "" {
		return nil
	}
	return fmt.Errorf("sync of %s failed: %s", r.Upstream, r.Error)
}

func (e *env) printSync(r catalog.SyncReport) {
	if r.Error != "" {
		fmt.Fprintf(e.stdout, "sync of %s failed: %s\n", safe(r.Upstream), safe(r.Error))
		return
	}
	fmt.Fprintf(e.stdout, "%s lists %d tools: %d new, %d changed (pending review), %d vanished, %d refused\n",
		safe(r.Upstream), r.Tools, len(r.Created)+len(r.New), len(r.Pending), len(r.Vanished), len(r.Refused))
	if r.FirstSync {
		fmt.Fprintf(e.stdout, "%d tools activated (first sync)\n", len(r.Created))
	}
	if len(r.New) > 0 {
		fmt.Fprintf(e.stdout, "%d new tools pending review: %s (neither listed nor callable until 'ostiary tools activate TOOL 1')\n",
			len(r.New), safe(strings.Join(r.New, ", ")))
	}
	for _, p := range r.Pending {
		fmt.Fprintf(e.stdout, "  pending: %s (review with 'ostiary tools versions')\n", safe(p))
	}
	for _, c := range r.Changed {
		fmt.Fprintf(e.stdout, "  changed: %s (calls refused until a version is activated, unless the upstream keeps them pinned)\n", safe(c))
	}
	for _, f := range r.Flagged {
		fmt.Fprintf(e.stdout, "  flagged: %s\n", safe(f))
	}
	for _, v := range r.Vanished {
		fmt.Fprintf(e.stdout, "  vanished: %s\n", safe(v))
	}
	for _, x := range r.Refused {
		fmt.Fprintf(e.stdout, "  refused: %s\n", safe(x))
	}
}

func (e *env) upstreamsAddCmd() *cobra.Command {
	var in adminapi.NewUpstream
	var prefix, command, caFile, certFile, openAPI, auth, exchangeSecret string
	var exchange spec.TokenExchange
	var headers, envs, cmdArgs []string
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "add NAME (--url URL [--header K=V]... [--token-exchange AUDIENCE ...] [--allow-private] [--allow-plain-http] [TLS options] | --command /ABS/PROGRAM [--arg ARG]... [--env K=V]... | --openapi FILE|URL --base-url URL [--operation ID]... [--auth SPEC] [--header K=V]...) [--prefix P] [--on-change refuse|keep-pinned]",
		Short: "Add an upstream MCP server or HTTP API and pin its tools",
		Long: `Add an upstream MCP server, over Streamable HTTP (--url) or stdio (--command, the
absolute path of a program the server's operator allowed with 'serve --stdio-allow',
with each argument given by its own --arg, passed as it is: nothing splits or
interprets it; started with a minimal environment, where variables that change how
programs load code, such as LD_PRELOAD, NODE_OPTIONS or PATH, cannot be set).
Its tools are exposed as NAME.TOOL, or PREFIX.TOOL with --prefix; --prefix ""
exposes them unprefixed when no name collides. The first sync activates the
tools it finds (except those whose text addresses the model or hides
characters or markup: flagged, they wait for review); tools that
appear later wait for review. A changed definition waits for review too, and
calls of that tool are refused meanwhile (tool-definition-changed), unless
--on-change keep-pinned lets them run under the pinned definition (recorded).

An https upstream is verified against the system roots, or only against
--tls-ca. --tls-client-cert presents a client certificate (mutual TLS) whose
private key is the vault secret --tls-client-key-secret: store it first with
'ostiary secrets set NAME --upstream UPSTREAM < key.pem'.
--tls-insecure-skip-verify is accepted only for a literal loopback address.

An http:// upstream is reached only at loopback unless --allow-plain-http;
loopback, private and link-local addresses only with --allow-private; and
addresses that are not hosts (0.0.0.0, broadcast, multicast, reserved,
documentation) never. A credential in the URL (user:password@, or a query
parameter such as token= or api_key=) is refused: send it in a header from
the vault.

An HTTP API described by an OpenAPI 3.0 or 3.1 document (--openapi: a file,
stored with the upstream, or an http(s) URL, fetched again at each sync) is
called at --base-url, under the same address and TLS rules. Each operation
(all, or those given with --operation, by operationId or as "METHOD /path")
becomes the tool NAME.OPERATION; a document that cannot be mapped is refused,
naming the operation and why. --auth gives the credential, from the vault:
bearer:SECRET, basic:USER:SECRET, header:NAME:SECRET, query:NAME:SECRET or
oauth2:CLIENT_ID:SECRET@TOKEN_URL[#SCOPE,SCOPE] (client credentials).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			in.Name = a[0]
			if cmd.Flags().Changed("prefix") {
				in.Prefix = &prefix
			}
			var err error
			if n := btoi(in.URL != "") + btoi(command != "") + btoi(openAPI != ""); n != 1 {
				return usageError("give exactly one of --url, --command and --openapi")
			}
			if openAPI == "" && (in.BaseURL != "" || len(in.Operations) > 0 || auth != "") {
				return usageError("--base-url, --operation and --auth go with --openapi")
			}
			if err := openAPIDocument(&in, openAPI); err != nil {
				return err
			}
			if auth != "" {
				if in.Auth, err = spec.ParseAuth(auth); err != nil {
					return usageError("%v", err)
				}
			}
			switch {
			case exchange.Audience != "":
				if exchange.ClientID == "" || exchangeSecret == "" {
					return usageError("--token-exchange needs --token-exchange-client-id and --token-exchange-client-secret-secret (Ostiary's client at the identity provider)")
				}
				exchange.ClientSecret = "${secret:" + exchangeSecret + "}"
				in.TokenExchange = &exchange
			case exchange.ClientID != "" || exchangeSecret != "" || len(exchange.Scopes) > 0 || exchange.Issuer != "":
				return usageError("--token-exchange-client-id, --token-exchange-client-secret-secret, --token-exchange-scope and --token-exchange-issuer go with --token-exchange")
			}
			if in.Command, err = commandLine(command, cmdArgs); err != nil {
				return err
			}
			if in.TLS.CA, err = readPEM("--tls-ca", caFile); err != nil {
				return err
			}
			if in.TLS.ClientCert, err = readPEM("--tls-client-cert", certFile); err != nil {
				return err
			}
			if in.Headers, err = keyValues("header", headers); err != nil {
				return err
			}
			if in.Env, err = keyValues("env", envs); err != nil {
				return err
			}
			var out adminapi.AddedUpstream
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			cmd.SetContext(ctx)
			p := e.startProgress("adding upstream " + safe(in.Name) + " and listing its tools")
			defer p.end()
			err = e.call(cmd, "POST", "/upstreams", nil, in, &out, asJSON, func() error {
				p.end()
				if err := e.printUpstreams(out.Upstream); err != nil {
					return err
				}
				e.printSync(out.Sync)
				return nil
			})
			if err != nil {
				return timedOut(ctx, err, fmt.Sprintf("; the server may still add the upstream: see 'ostiary upstreams list', and 'ostiary upstreams sync %s' once it answers", in.Name))
			}
			if err := syncFailed(out.Sync); err != nil {
				return fmt.Errorf("%w; the upstream was added: once it answers, run 'ostiary upstreams sync %s'", err, in.Name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.URL, "url", "", "Streamable HTTP endpoint of the upstream")
	f.StringVar(&openAPI, "openapi", "", "HTTP API: its OpenAPI document, a `FILE` (stored) or an http(s) URL (fetched at each sync)")
	f.StringVar(&in.BaseURL, "base-url", "", "HTTP API: the URL its operations are called at")
	f.StringArrayVar(&in.Operations, "operation", nil, "HTTP API: an operation to expose, by operationId or as \"METHOD /path\" (repeatable; default all)")
	f.StringVar(&auth, "auth", "", "HTTP API: the credential, bearer:SECRET, basic:USER:SECRET, header:NAME:SECRET, query:NAME:SECRET or oauth2:CLIENT_ID:SECRET@TOKEN_URL[#SCOPES] (SECRET names a vault secret)")
	f.StringArrayVar(&headers, "header", nil, "header sent to the upstream, K=V (repeatable)")
	f.StringVar(&exchange.Audience, "token-exchange", "", "HTTP upstream: send each caller's identity-provider token exchanged (RFC 8693) for one issued to this `AUDIENCE`; API keys cannot call it")
	f.StringVar(&exchange.ClientID, "token-exchange-client-id", "", "Ostiary's client `ID` at the identity provider, allowed to exchange tokens")
	f.StringVar(&exchangeSecret, "token-exchange-client-secret-secret", "", "vault secret `NAME` holding that client's secret (scoped to this upstream)")
	f.StringArrayVar(&exchange.Scopes, "token-exchange-scope", nil, "scope asked for the exchanged token (repeatable)")
	f.StringVar(&exchange.Issuer, "token-exchange-issuer", "", "the identity provider (issuer `URL`) where that client is registered: its secret goes there only, and only its users' tokens are exchanged (needed when several are trusted)")
	f.StringVar(&command, "command", "", "stdio upstream: the program's absolute `PATH`, alone (arguments go in --arg)")
	f.StringArrayVar(&cmdArgs, "arg", nil, "stdio upstream: one argument of the program, passed as it is (repeatable, in order)")
	f.StringArrayVar(&envs, "env", nil, "environment variable of the stdio program, K=V (repeatable)")
	f.StringVar(&prefix, "prefix", "", "namespace of its tools (default: NAME; \"\" for none)")
	f.BoolVar(&in.AllowPrivate, "allow-private", false, "let an HTTP upstream be reached at loopback, private or link-local addresses (refused by default)")
	f.BoolVar(&in.AllowPlainHTTP, "allow-plain-http", false, "let an http:// upstream be reached at a non-loopback address, unencrypted (refused by default; recorded)")
	f.StringVar(&caFile, "tls-ca", "", "PEM `FILE` of the CA certificates an https upstream must chain to (instead of the system roots)")
	f.StringVar(&certFile, "tls-client-cert", "", "PEM `FILE` of the client certificate chain presented to the upstream (mutual TLS)")
	f.StringVar(&in.TLS.ClientKeySecret, "tls-client-key-secret", "", "vault secret `NAME` holding the client certificate's private key (PEM)")
	f.StringVar(&in.OnChange, "on-change", "", "what calls of a tool whose definition changed upstream do until reviewed: refuse (default) or keep-pinned")
	f.StringVar(&in.CallTimeout, "call-timeout", "", "bound on each tool call, e.g. 30s (default and cap: the server's --call-timeout)")
	f.BoolVar(&in.TLS.InsecureSkipVerify, "tls-insecure-skip-verify", false, "accept any certificate (only for an upstream at 127.0.0.1 or [::1]; audited)")
	f.DurationVar(&timeout, "timeout", 0, "stop waiting for the server's answer after this long, e.g. 10s (default: the CLI's 60s)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// openAPIDocument sets the document of an OpenAPI upstream: a URL the
// server fetches, or a file read here and sent.
func openAPIDocument(in *adminapi.NewUpstream, src string) error {
	if src == "" {
		return nil
	}
	if strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://") {
		in.OpenAPI = src
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return usageError("--openapi: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, spec.MaxDocument+1))
	if err != nil {
		return usageError("--openapi: %v", err)
	}
	if len(b) > spec.MaxDocument {
		return usageError("--openapi: %s is larger than %d MiB", src, spec.MaxDocument>>20)
	}
	in.OpenAPIDocument = string(b)
	return nil
}

// commandLine is a stdio upstream's command: the program, alone, and its
// arguments, each as given. A --command with whitespace is the old
// "CMD ARG..." form, which is refused rather than split.
func commandLine(command string, args []string) ([]string, error) {
	if command == "" {
		if len(args) > 0 {
			return nil, usageError("--arg goes with --command")
		}
		return nil, nil
	}
	if strings.ContainsFunc(command, unicode.IsSpace) {
		return nil, usageError("--command takes only the program's absolute path; give each argument with its own --arg, e.g. --command /usr/local/bin/server --arg --stdio")
	}
	return append([]string{command}, args...), nil
}

// readPEM reads a certificate file named by flag; "" reads nothing. A
// private key is refused here: keys belong in the vault.
func readPEM(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageError("%s: %v", flag, err)
	}
	if strings.Contains(string(b), "PRIVATE KEY-----") {
		return "", usageError("%s: %s holds a private key; store keys with 'ostiary secrets set' and name them with --tls-client-key-secret", flag, path)
	}
	return string(b), nil
}

func (e *env) printUpstreams(ups ...adminapi.UpstreamView) error {
	t := newTable(e.stdout, "NAME", "PREFIX", "KIND", "ENDPOINT", "HEADERS", "CREATED", "BY")
	for _, u := range ups {
		endpoint := u.URL
		if u.OpenAPI != nil {
			endpoint += " (OpenAPI " + u.OpenAPI.Source + ")"
		}
		if u.Kind == "stdio" {
			endpoint = commandText(u.Command)
		}
		prefix := u.Prefix
		if prefix == "" {
			prefix = "(none)"
		}
		t.row(u.Name, prefix, u.Kind, endpoint, list(u.HeaderNames), when(&u.CreatedAt), u.CreatedBy)
	}
	return t.flush()
}

// commandText shows a stdio command unambiguously: an argument that is
// empty or holds spaces or quotes is shown quoted.
func commandText(command []string) string {
	out := make([]string, len(command))
	for i, a := range command {
		out[i] = a
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\'' || r == '\\' }) {
			out[i] = strconv.Quote(a)
		}
	}
	return strings.Join(out, " ")
}

func (e *env) upstreamsListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List upstreams (header values are never shown)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l adminapi.UpstreamList
			return e.call(cmd, "GET", "/upstreams", nil, nil, &l, asJSON, func() error { return e.printUpstreams(l.Upstreams...) })
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) upstreamsRemoveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an upstream and its tools",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return e.call(cmd, "DELETE", "/upstreams/"+url.PathEscape(a[0]), nil, nil, nil, false, func() error {
				fmt.Fprintf(e.stdout, "removed upstream %s\n", safe(a[0]))
				return nil
			})
		},
	}
	return cmd
}

func (e *env) upstreamsSyncCmd() *cobra.Command {
	var asJSON bool
	var doc string
	cmd := &cobra.Command{
		Use:   "sync NAME [--openapi FILE]",
		Short: "Re-read an upstream's tools now (an HTTP API's document: its URL's, or a new FILE's)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var r catalog.SyncReport
			method, path, body := "POST", "/upstreams/"+url.PathEscape(a[0])+"/sync", any(nil)
			if doc != "" {
				var in adminapi.NewUpstream
				if strings.HasPrefix(doc, "https://") || strings.HasPrefix(doc, "http://") {
					return usageError("--openapi here takes a FILE: an upstream added with a document URL fetches it at each sync")
				}
				if err := openAPIDocument(&in, doc); err != nil {
					return err
				}
				method, path, body = "PUT", "/upstreams/"+url.PathEscape(a[0])+"/openapi", adminapi.OpenAPIDocument{Document: in.OpenAPIDocument}
			}
			if err := e.call(cmd, method, path, nil, body, &r, asJSON, func() error {
				e.printSync(r)
				return nil
			}); err != nil {
				return err
			}
			return syncFailed(r)
		},
	}
	cmd.Flags().StringVar(&doc, "openapi", "", "an HTTP API added with a document file: its new document `FILE`, stored and synced (a changed operation waits for review)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) toolsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "The tool catalog: versions, review and rollback"}
	cmd.AddCommand(e.toolsListCmd(), e.toolsVersionsCmd(), e.toolsActivateCmd(), e.toolsRollbackCmd(), e.toolsTimeoutCmd(), e.toolsLabelCmd())
	return cmd
}

func (e *env) toolsListCmd() *cobra.Command {
	var as string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--as USER]",
		Short: "List the catalog (all of it with manage-tools, else what you may discover; --as: what USER may discover)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if as != "" {
				q.Set("as", as)
			}
			var l adminapi.ToolList
			return e.call(cmd, "GET", "/tools", q, nil, &l, asJSON, func() error {
				t := newTable(e.stdout, "TOOL", "UPSTREAM", "VERSION", "PENDING", "STATE", "TIMEOUT", "LABELS", "DESCRIPTION")
				for _, tool := range l.Tools {
					state := tool.State
					if state == "" {
						state = "ok"
					}
					desc := tool.Description
					if len(desc) > 60 {
						desc = desc[:60] + "…"
					}
					timeout := tool.CallTimeout
					if timeout == "" {
						timeout = "-"
					}
					t.row(tool.Name, tool.Upstream, strconv.Itoa(tool.Version), strconv.Itoa(tool.Pending), state, timeout, labelSummary(tool.Labels), desc)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "show what this user may discover")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) toolsVersionsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "versions TOOL",
		Short: "List every version of a tool's definition",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var l adminapi.VersionList
			return e.call(cmd, "GET", "/tools/versions", url.Values{"tool": {a[0]}}, nil, &l, asJSON, func() error {
				t := newTable(e.stdout, "VERSION", "STATUS", "DIGEST", "SEEN", "ACTIVATED", "BY", "REVIEW")
				for _, v := range l.Versions {
					review := "-"
					if len(v.Flags) > 0 {
						review = "flagged: " + strings.Join(v.Flags, ", ")
					}
					t.row(strconv.Itoa(v.Version), string(v.Status), v.Digest[:16], when(&v.SeenAt), when(&v.ActivatedAt), dash(v.ActivatedBy), review)
				}
				return t.flush()
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func (e *env) toolsActivateCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "activate TOOL VERSION",
		Short: "Pin a version of a tool (approve a pending change or a new tool, roll back, or re-activate the pinned one to acknowledge a change)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			v, err := strconv.Atoi(a[1])
			if err != nil || v < 1 {
				return usageError("VERSION must be a positive number")
			}
			var out proposedAnswer
			return e.call(cmd, "POST", "/tools/activate", nil, adminapi.Activation{Tool: a[0], Version: v, Reason: reason}, &out, false, func() error {
				if out.Proposal != nil {
					return e.printProposed(out.Proposal)
				}
				fmt.Fprintf(e.stdout, "%s is now pinned at version %d\n", safe(a[0]), v)
				return nil
			})
		},
	}
	reasonFlag(cmd, &reason)
	return cmd
}

func (e *env) toolsTimeoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "timeout TOOL DURATION",
		Short: "Bound a tool's calls (e.g. 30s; 0 clears); the upstream's and the server's bounds still apply",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if a[1] != "0" {
				if _, err := time.ParseDuration(a[1]); err != nil {
					return usageError("DURATION must be like 30s or 2m, or 0 to clear")
				}
			}
			return e.call(cmd, "POST", "/tools/timeout", nil, adminapi.ToolTimeout{Tool: a[0], Timeout: a[1]}, nil, false, func() error {
				if a[1] == "0" {
					fmt.Fprintf(e.stdout, "%s has no timeout of its own now\n", safe(a[0]))
				} else {
					fmt.Fprintf(e.stdout, "calls of %s now time out after %s\n", safe(a[0]), safe(a[1]))
				}
				return nil
			})
		},
	}
}

// labelSummary is labels in a table cell.
func labelSummary(l *policy.Labels) string {
	if l == nil {
		return "(unlabelled)"
	}
	parts := []string{}
	if len(l.DataClasses) > 0 {
		parts = append(parts, strings.Join(l.DataClasses, ","))
	}
	if l.Risk != "" {
		parts = append(parts, "risk="+l.Risk)
	}
	if l.Irreversible {
		parts = append(parts, "irreversible")
	}
	if l.Egress {
		parts = append(parts, "egress")
	}
	if l.RequireApproval {
		parts = append(parts, fmt.Sprintf("approval×%d", max(l.Approvers, 1)))
	}
	if l.AllowElicitation {
		parts = append(parts, "elicitation")
	}
	if l.AllowSampling {
		parts = append(parts, "sampling")
	}
	if l.Owner != "" {
		parts = append(parts, "owner="+l.Owner)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func (e *env) toolsLabelCmd() *cobra.Command {
	var l policy.Labels
	var clearAll, asJSON bool
	var reason string
	cmd := &cobra.Command{
		Use:   "label TOOL [--data-class C]... [--risk TIER] [--irreversible] [--egress] [--owner NAME] [--require-approval [--approvers N]] [--allow-elicitation] [--allow-sampling] | --clear",
		Short: "Set a tool's governance labels (what the policy and the risk score work from)",
		Long: `Set a tool's governance labels: data classes (public, internal, pii, financial,
secret, regulated, or your own), risk tier (low, medium, high, critical), whether
it is irreversible, whether it sends data outside (egress), its owner, and
whether every call needs approval (--require-approval, by --approvers N distinct
people; 1 by default), and whether its upstream may, during a call, ask the
user for input (--allow-elicitation) or ask the user's model
(--allow-sampling): both are refused, on record, unless allowed here.

Flags given replace those labels; the others keep their values (so
--irreversible=false unsets one, and --data-class replaces the list).
--clear removes every label: the upstream's annotations (read-only,
destructive, open-world hints) stand in again. Needs manage-tools on the tool;
the change is audited with the labels before and after.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			f := cmd.Flags()
			if clearAll {
				if f.NFlag() > 1+boolInt(f.Changed("json"))+boolInt(f.Changed("reason")) {
					return usageError("--clear takes no other label flags")
				}
				var out proposedAnswer
				return e.call(cmd, "POST", "/tools/labels", nil, adminapi.ToolLabels{Tool: a[0], Reason: reason}, &out, asJSON, func() error {
					if out.Proposal != nil {
						return e.printProposed(out.Proposal)
					}
					fmt.Fprintf(e.stdout, "%s is unlabelled now: its upstream's hints stand in\n", safe(a[0]))
					return nil
				})
			}
			if f.NFlag() == boolInt(f.Changed("json"))+boolInt(f.Changed("reason")) {
				return usageError("give at least one label flag, or --clear")
			}
			var tl adminapi.ToolList
			c, err := e.newClient()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), "GET", "/tools", nil, nil, &tl, nil); err != nil {
				return err
			}
			next := policy.Labels{}
			found := false
			for _, t := range tl.Tools {
				if t.Name == a[0] {
					found = true
					if t.Labels != nil {
						next = *t.Labels
					}
				}
			}
			if !found {
				return fmt.Errorf("tool %q is not in the catalog", a[0])
			}
			if f.Changed("data-class") {
				next.DataClasses = l.DataClasses
			}
			if f.Changed("risk") {
				next.Risk = l.Risk
			}
			if f.Changed("irreversible") {
				next.Irreversible = l.Irreversible
			}
			if f.Changed("egress") {
				next.Egress = l.Egress
			}
			if f.Changed("owner") {
				next.Owner = l.Owner
			}
			if f.Changed("require-approval") {
				next.RequireApproval = l.RequireApproval
				if !l.RequireApproval {
					next.Approvers = 0
				}
			}
			if f.Changed("approvers") {
				next.Approvers = l.Approvers
			}
			if f.Changed("allow-elicitation") {
				next.AllowElicitation = l.AllowElicitation
			}
			if f.Changed("allow-sampling") {
				next.AllowSampling = l.AllowSampling
			}
			if err := next.Validate(); err != nil {
				return usageError("%v", err)
			}
			var out proposedAnswer
			return e.call(cmd, "POST", "/tools/labels", nil, adminapi.ToolLabels{Tool: a[0], Labels: &next, Reason: reason}, &out, asJSON, func() error {
				if out.Proposal != nil {
					return e.printProposed(out.Proposal)
				}
				fmt.Fprintf(e.stdout, "%s: %s\n", safe(a[0]), safe(labelSummary(&next)))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&l.DataClasses, "data-class", nil, "a data class of what the tool touches (repeatable)")
	f.StringVar(&l.Risk, "risk", "", "risk tier: low, medium, high or critical")
	f.BoolVar(&l.Irreversible, "irreversible", false, "its effects cannot be undone")
	f.BoolVar(&l.Egress, "egress", false, "it sends data outside the organisation")
	f.StringVar(&l.Owner, "owner", "", "who answers for the tool")
	f.BoolVar(&l.RequireApproval, "require-approval", false, "every call needs approval, without a policy rule")
	f.IntVar(&l.Approvers, "approvers", 0, "distinct approvers --require-approval needs (default 1)")
	f.BoolVar(&l.AllowElicitation, "allow-elicitation", false, "its upstream may ask the user for input during a call (elicitation)")
	f.BoolVar(&l.AllowSampling, "allow-sampling", false, "its upstream may ask the user's model during a call (sampling)")
	f.BoolVar(&clearAll, "clear", false, "remove every label")
	reasonFlag(cmd, &reason)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
