package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/demo"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

func (e *env) demoCmd() *cobra.Command {
	var flags config.Config
	cmd := &cobra.Command{
		Use:   "demo [--data DIR] [--listen 127.0.0.1:8080]",
		Short: "Run Ostiary with a demo upstream, users and keys, ready to call",
		Long: `Initialise a data directory (a fresh temporary one unless --data names one),
run the server on it with a built-in demo upstream (a shop back office over
stdio: order lookups, a personal-data lookup, a payment and a destructive purge),
create users with different rights, and print their API keys and commands that
call tools through the gateway as an MCP client does.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := e.applySettings(cmd, "", nil); err != nil {
				return usageError("%v", err)
			}
			cfg, err := e.serverConfig(cmd, flags)
			if err != nil {
				return usageError("%v", err)
			}
			// The demo's shop upstream is this very binary ('ostiary
			// demo-upstream'): the demo allows it, and only it beyond what
			// the operator allowed.
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.StdioAllow = append(cfg.StdioAllow, exe)
			temp := ""
			if cfg.DataDir == "" {
				if cfg.DataDir, err = os.MkdirTemp("", "ostiary-demo-"); err != nil {
					return err
				}
				temp = cfg.DataDir
			}
			started := false
			// A temporary directory of a demo that never started holds
			// nothing anyone can use (its keys were never shown): remove it.
			defer func() {
				if temp != "" && !started {
					os.RemoveAll(temp)
				}
			}()
			if err := cfg.Validate(); err != nil {
				return usageError("%v", err)
			}
			adminKey := ""
			if !app.Initialised(cfg.DataDir) {
				if adminKey, err = app.Init(cmd.Context(), cfg.DataDir, time.Now); err != nil {
					return err
				}
			}
			wh, err := startWarehouse(cfg.DataDir)
			if err != nil {
				return fmt.Errorf("starting the demo warehouse API: %w", err)
			}
			defer wh.close()
			var seedErr error
			err = e.serve(cmd.Context(), cfg, func(base string) {
				started = true
				base = reachable(base)
				var users []demoUser
				if adminKey != "" {
					if users, seedErr = e.seedDemo(cmd.Context(), base, adminKey, wh); seedErr != nil {
						fmt.Fprintf(e.stderr, "ostiary: demo set-up failed: %v\n", seedErr)
						return
					}
				}
				e.demoBanner(base, cfg.DataDir, users)
			})
			if err == nil {
				err = seedErr
			}
			return err
		},
	}
	e.serverFlags(cmd, &flags)
	return cmd
}

type demoUser struct {
	name, key, can string
}

// seedDemo sets the demo up through the admin API, as an operator would:
// every step is authenticated, authorized and audited.
func (e *env) seedDemo(ctx context.Context, base, adminKey string, wh *warehouse) ([]demoUser, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &client{token: adminKey}
	if c.base, err = parseAddr(base); err != nil {
		return nil, err
	}
	if c.http, err = e.httpClient(); err != nil {
		return nil, err
	}
	// The shop's back-office credential lives in the vault and reaches the
	// upstream process only through ${secret:...} at spawn.
	token := make([]byte, 24)
	rand.Read(token)
	if err := c.do(ctx, "PUT", "/secrets/shop-token", nil, adminapi.SetSecret{Value: hex.EncodeToString(token), Upstreams: []string{"shop"}}, nil, nil); err != nil {
		return nil, fmt.Errorf("storing the demo credential: %w", err)
	}
	var added adminapi.AddedUpstream
	if err := c.do(ctx, "POST", "/upstreams", nil, adminapi.NewUpstream{Name: "shop", Command: []string{exe, "demo-upstream"},
		Env: map[string]string{"SHOP_TOKEN": "${secret:shop-token}"}}, &added, nil); err != nil {
		return nil, fmt.Errorf("adding the demo upstream: %w", err)
	}
	if added.Sync.Error != "" || added.Sync.Tools == 0 {
		return nil, fmt.Errorf("the demo upstream did not list its tools: %s", added.Sync.Error)
	}
	// The warehouse is an HTTP API: its OpenAPI document's operations are
	// tools, its bearer token from the vault.
	if err := c.do(ctx, "PUT", "/secrets/warehouse-token", nil, adminapi.SetSecret{Value: wh.token, Upstreams: []string{"warehouse"}}, nil, nil); err != nil {
		return nil, fmt.Errorf("storing the warehouse credential: %w", err)
	}
	added = adminapi.AddedUpstream{}
	if err := c.do(ctx, "POST", "/upstreams", nil, adminapi.NewUpstream{Name: "warehouse", OpenAPIDocument: demo.WarehouseDocument, BaseURL: wh.url,
		AllowPrivate: true, Auth: &spec.HTTPAuth{Type: spec.AuthBearer, Secret: "warehouse-token"}}, &added, nil); err != nil {
		return nil, fmt.Errorf("adding the demo warehouse API: %w", err)
	}
	if added.Sync.Error != "" || added.Sync.Tools == 0 {
		return nil, fmt.Errorf("the demo warehouse API did not list its operations: %s", added.Sync.Error)
	}
	// Governance labels: what the policy's risk score and rules work from.
	// The default policy holds every irreversible financial call for one
	// approver (two above 10,000).
	for tool, l := range map[string]policy.Labels{
		"shop.lookup_order":     {DataClasses: []string{policy.ClassInternal}, Risk: "low", Owner: "Customer service"},
		"shop.customer_profile": {DataClasses: []string{policy.ClassPII}, Owner: "Customer service"},
		"shop.pay_invoice":      {DataClasses: []string{policy.ClassFinancial}, Irreversible: true, Egress: true, Owner: "Finance"},
		"shop.purge_records":    {DataClasses: []string{policy.ClassRegulated}, Irreversible: true, Risk: "critical", Owner: "Data protection"},
	} {
		if err := c.do(ctx, "POST", "/tools/labels", nil, adminapi.ToolLabels{Tool: tool, Labels: &l}, nil, nil); err != nil {
			return nil, fmt.Errorf("labelling %s: %w", tool, err)
		}
	}
	roles := []identity.NewRole{
		{Name: "support", Grants: []string{"invoke:shop.lookup_order", "invoke:shop.customer_profile", "invoke:warehouse.get_stock"}},
		{Name: "finance", Grants: []string{"invoke:shop.lookup_order", "invoke:shop.pay_invoice"}},
		{Name: "finance-lead", Grants: []string{"discover:shop.*", "approve:shop.pay_invoice", "discover:warehouse.*", "approve:warehouse.*"}},
		{Name: "order-bot", Grants: []string{"invoke:shop.lookup_order", "invoke:warehouse.*"}},
	}
	for _, r := range roles {
		if err := c.do(ctx, "POST", "/roles", nil, r, nil, nil); err != nil {
			return nil, fmt.Errorf("creating role %s: %w", r.Name, err)
		}
	}
	users := []struct {
		user identity.NewUser
		can  string
	}{
		{identity.NewUser{Name: "alice", Roles: []string{"support"}}, "orders, customer profiles (personal data) and stock levels"},
		{identity.NewUser{Name: "bob", Roles: []string{"finance"}}, "orders and invoice payments"},
		{identity.NewUser{Name: "carol", Roles: []string{"finance-lead"}}, "nothing, but approves invoice payments and stock write-offs"},
		{identity.NewUser{Name: "order-bot", Service: true, Roles: []string{"order-bot"}}, "order lookups and the warehouse API (a service account)"},
	}
	var out []demoUser
	for _, u := range users {
		if err := c.do(ctx, "POST", "/users", nil, u.user, nil, nil); err != nil {
			return nil, fmt.Errorf("creating user %s: %w", u.user.Name, err)
		}
		var k adminapi.CreatedKey
		if err := c.do(ctx, "POST", "/keys", nil, identity.NewKeyRequest{User: u.user.Name, ExpiresIn: "7d"}, &k, nil); err != nil {
			return nil, fmt.Errorf("creating a key for %s: %w", u.user.Name, err)
		}
		out = append(out, demoUser{u.user.Name, k.APIKey, u.can})
	}
	return append([]demoUser{{"admin", adminKey, "everything, purge_records and the admin API included"}}, out...), nil
}

// reachable is base with an unspecified listen address (0.0.0.0, [::]:
// every interface, as in a container) replaced by localhost, which a client
// can connect to and a certificate can name.
func reachable(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip.IsUnspecified() {
		u.Host = net.JoinHostPort("localhost", u.Port())
	}
	return u.String()
}

// selfCommand is how to run this program again from a shell, exactly as
// printed: its absolute path, or 'go run ./cmd/ostiary' when it is the
// temporary build of 'go run' (gone when the demo stops). exe is
// os.Executable(); "" when unknown.
func selfCommand(exe string) string {
	if exe == "" {
		return "ostiary"
	}
	if dir := filepath.Dir(exe); filepath.Base(dir) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "go-build") {
		return "go run ./cmd/ostiary"
	}
	return shellQuote(exe)
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// path characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (e *env) demoBanner(base, dir string, users []demoUser) {
	w := e.stdout
	exe, _ := os.Executable()
	self := selfCommand(exe)
	fmt.Fprintf(w, "Ostiary demo running.\n\n  MCP endpoint:   %s/mcp\n  Admin API:      %s/api/v1\n  Data directory: %s\n\n", base, base, dir)
	if len(users) == 0 {
		fmt.Fprintf(w, "This directory was set up earlier; use the keys printed then.\n\n")
		return
	}
	fmt.Fprintf(w, "API keys (shown once):\n\n")
	for _, u := range users {
		fmt.Fprintf(w, "  %-10s %s\n             may call %s\n", u.name, u.key, u.can)
	}
	alice, bob := users[1].key, users[2].key
	fmt.Fprintf(w, "\nCall a tool as alice, with the official MCP Go SDK inside ostiary:\n\n")
	fmt.Fprintf(w, "  export OSTIARY_ADDR=%s\n", base)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp call shop.customer_profile '{\"customer_id\":\"C-7\"}'\n", alice, self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp call shop.customer_profile '{\"customer_id\":\"C-7\"}'   # bob: refused\n", bob, self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp tools\n", bob, self)
	carol := users[3].key
	fmt.Fprintf(w, "\nA payment is held until someone else approves it (the default policy; see '%s policy show'):\n\n", self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp call shop.pay_invoice '{\"invoice_id\":\"INV-1\",\"amount\":120}'   # bob: held, names apr_…\n", bob, self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s approvals list --pending\n", carol, self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s approvals approve APPROVAL_ID --reason 'invoice INV-1 checked'   # APPROVAL_ID: the apr_… id bob's call printed\n", carol, self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp call shop.pay_invoice '{\"invoice_id\":\"INV-1\",\"amount\":120}'   # bob again: paid, once\n", bob, self)
	fmt.Fprintf(w, "\nThe warehouse is an HTTP API: its OpenAPI operations are tools, governed alike (an agent's DELETE waits for approval):\n\n")
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp call warehouse.get_stock '{\"sku\":\"SKU-1\"}'\n", alice, self)
	fmt.Fprintf(w, "  OSTIARY_TOKEN=%[1]s %[2]s mcp call warehouse.write_off '{\"sku\":\"SKU-3\"}'   # order-bot: held, names apr_…\n", users[4].key, self)
	fmt.Fprintf(w, "\nOr with curl (MCP 2026-07-28, one self-contained request):\n\n  %s\n", curlCall(base, alice))
	fmt.Fprintf(w, "\nAny MCP client works: point it at %s/mcp with the header 'Authorization: Bearer <key>'.\n", base)
	fmt.Fprintf(w, "\nThen see the evidence:\n\n  OSTIARY_TOKEN=%[1]s %[2]s audit query --limit 20\n", users[0].key, self)
	fmt.Fprintf(w, "\nStop with Ctrl-C, then prove the audit log whole:\n\n  %s audit verify --data %s\n\n", self, shellQuote(dir))
}

func curlCall(base, key string) string {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shop.lookup_order","arguments":{"order_id":"A-1001"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"curl","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
	return strings.Join([]string{
		"curl -s " + base + "/mcp",
		"-H 'Authorization: Bearer " + key + "'",
		"-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'",
		"-H 'Mcp-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: shop.lookup_order'",
		"-d '" + body + "'",
	}, " \\\n      ")
}

// warehouse is the demo's HTTP API, served on loopback for as long as the
// demo runs. Its address and token are kept in the data directory (mode
// 0600: the backend's own configuration), so that a demo run again on the
// same directory serves it where the upstream was added.
type warehouse struct {
	url, token string
	srv        *http.Server
}

func (w *warehouse) close() { w.srv.Close() }

func startWarehouse(dir string) (*warehouse, error) {
	path := filepath.Join(dir, "demo-warehouse.json")
	var saved struct {
		Addr  string `json:"addr"`
		Token string `json:"token"`
	}
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &saved)
	}
	var ln net.Listener
	if saved.Addr != "" && saved.Token != "" {
		// Where the upstream was added; if taken now, a fresh address (the
		// upstream added earlier then fails its calls, on record).
		ln, _ = net.Listen("tcp", saved.Addr)
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		tok := make([]byte, 24)
		rand.Read(tok)
		saved.Addr, saved.Token = ln.Addr().String(), hex.EncodeToString(tok)
		b, _ := json.Marshal(saved)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			ln.Close()
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			ln.Close()
			return nil, err
		}
	}
	w := &warehouse{url: "http://" + saved.Addr, token: saved.Token,
		srv: &http.Server{Handler: demo.Warehouse(saved.Token), ReadHeaderTimeout: 10 * time.Second}}
	go w.srv.Serve(ln)
	return w, nil
}
