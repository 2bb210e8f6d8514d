// Package demo is what 'ostiary demo' runs behind the gateway: a small shop
// back office as an MCP server (read-only lookups, a personal-data lookup, a
// payment and a destructive purge), and the users and roles that show
// different people seeing and calling different tools.
package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream"
)

// Shop is the demo upstream's state.
type Shop struct {
	mu       sync.Mutex
	orders   map[string]string
	paid     []string
	purged   bool
	customer map[string]map[string]string
}

// NewServer returns the demo MCP server. Its back-office credential comes
// from the environment (SHOP_TOKEN), which the demo fills from Ostiary's
// vault; results say whether it was there, never what it is.
func NewServer() *mcp.Server {
	credential := "missing"
	if os.Getenv("SHOP_TOKEN") != "" {
		credential = "present (injected from Ostiary's vault)"
	}
	shop := &Shop{
		orders: map[string]string{"A-1001": "shipped", "A-1002": "awaiting payment", "A-1003": "delivered"},
		customer: map[string]map[string]string{
			"C-7": {"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+44 20 7946 0018"},
			"C-9": {"name": "Alan Turing", "email": "alan@example.org", "phone": "+44 20 7946 0991"},
		},
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "ostiary-demo-shop", Version: "1"}, nil)
	yes, no := true, false
	type orderIn struct {
		OrderID string `json:"order_id" jsonschema:"order id, e.g. A-1001"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "lookup_order", Description: "Look up the status of an order by its id (e.g. A-1001).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no}},
		func(ctx context.Context, req *mcp.CallToolRequest, in orderIn) (*mcp.CallToolResult, map[string]any, error) {
			shop.mu.Lock()
			status, ok := shop.orders[in.OrderID]
			shop.mu.Unlock()
			if !ok {
				return errorResult("no order %q", in.OrderID), nil, nil
			}
			return nil, map[string]any{"order_id": in.OrderID, "status": status, "served_to": assertedUser(req), "backend_credential": credential}, nil
		})
	type customerIn struct {
		CustomerID string `json:"customer_id" jsonschema:"customer id, e.g. C-7"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "customer_profile", Description: "Return a customer's name, email and phone number (personal data).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no}},
		func(ctx context.Context, req *mcp.CallToolRequest, in customerIn) (*mcp.CallToolResult, map[string]any, error) {
			shop.mu.Lock()
			c, ok := shop.customer[in.CustomerID]
			shop.mu.Unlock()
			if !ok {
				return errorResult("no customer %q", in.CustomerID), nil, nil
			}
			out := map[string]any{"customer_id": in.CustomerID, "served_to": assertedUser(req)}
			for k, v := range c {
				out[k] = v
			}
			return nil, out, nil
		})
	type payIn struct {
		InvoiceID string  `json:"invoice_id" jsonschema:"invoice id"`
		Amount    float64 `json:"amount" jsonschema:"amount in euros"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "pay_invoice", Description: "Pay a supplier invoice. Money leaves the company; this cannot be undone.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &no, OpenWorldHint: &yes}},
		func(ctx context.Context, req *mcp.CallToolRequest, in payIn) (*mcp.CallToolResult, map[string]any, error) {
			if in.Amount <= 0 {
				return errorResult("amount must be positive"), nil, nil
			}
			shop.mu.Lock()
			shop.paid = append(shop.paid, in.InvoiceID)
			shop.mu.Unlock()
			return nil, map[string]any{"invoice_id": in.InvoiceID, "paid_eur": in.Amount, "served_to": assertedUser(req)}, nil
		})
	type purgeIn struct {
		Before string `json:"before" jsonschema:"delete records older than this date (YYYY-MM-DD)"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "purge_records", Description: "Permanently delete every record older than a date.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &yes, OpenWorldHint: &no}},
		func(ctx context.Context, req *mcp.CallToolRequest, in purgeIn) (*mcp.CallToolResult, map[string]any, error) {
			shop.mu.Lock()
			shop.purged = true
			shop.mu.Unlock()
			return nil, map[string]any{"purged_before": in.Before, "records_deleted": 1312, "served_to": assertedUser(req)}, nil
		})
	return s
}

func errorResult(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// assertedUser reads the user named by Ostiary's identity assertion (in
// _meta over stdio, in a header over HTTP). The demo only displays it; a
// real upstream verifies it against /.well-known/jwks.json first
// (assertion.Verify does).
func assertedUser(req *mcp.CallToolRequest) string {
	tok, _ := req.Params.Meta[upstream.MetaIdentity].(string)
	if tok == "" && req.Extra != nil && req.Extra.Header != nil {
		tok = req.Extra.Header.Get("Ostiary-Identity")
	}
	return assertedSubject(tok)
}

// assertedSubject reads the subject of an identity assertion (unverified:
// the demo only shows it).
func assertedSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "(no identity assertion)"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "(unreadable identity assertion)"
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	json.Unmarshal(payload, &claims)
	return claims.Sub
}

// ServeStdio serves the demo shop on stdin/stdout until the client leaves.
func ServeStdio(ctx context.Context) error {
	return NewServer().Run(ctx, &mcp.StdioTransport{})
}
