package govern

import (
	"context"
	"encoding/json"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// builtins are Ostiary's own tools, visible to every authenticated caller.
var builtins = []*mcp.Tool{{
	Name:        "discover_tools",
	Description: "Search the tools you may use by words in their name or description. Use it when the tool list is too long to read.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string","description":"words to look for"},"limit":{"type":"integer","minimum":1,"maximum":100}},"additionalProperties":false}`),
	Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
}, {
	Name:        "approval_status",
	Description: "Check your own calls held for approval: one by its id, or your recent ones. Once a request is approved, repeat exactly the same call to run it.",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string","description":"an approval id (apr_…)"}},"additionalProperties":false}`),
	Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
}}

// builtin serves Ostiary's own tools by name.
var builtin = map[string]func(pl *Pipeline, ctx context.Context, c *toolCall) (mcp.Result, error){
	"discover_tools":  (*Pipeline).discover,
	"approval_status": (*Pipeline).approvalStatus,
}

// discover serves the built-in discover_tools: a search over only what the
// caller may discover.
func (pl *Pipeline) discover(ctx context.Context, c *toolCall) (mcp.Result, error) {
	p, rec, args, argErr := c.p, c.rec, c.req.Args.value, c.req.ArgErr
	var in struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
	}
	if argErr == nil {
		b, _ := json.Marshal(args)
		argErr = strictjson.Decode(b, &in)
	}
	if argErr != nil || in.Limit < 0 || in.Limit > 100 {
		return nil, pl.Deny(ctx, rec, ReasonBadArguments, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: "invalid arguments for tool \"discover_tools\": want {\"query\": string, \"limit\": 1-100}"})
	}
	if in.Limit == 0 {
		in.Limit = 20
	}
	snap := pl.cfg.Catalog.Snapshot()
	found := snap.Search(in.Query, pl.visible(snap, p), in.Limit)
	type hit struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Invocable   bool   `json:"invocable"`
	}
	hits := make([]hit, len(found))
	for i, e := range found {
		hits[i] = hit{e.Name, e.Tool.Description, p.Allows(authz.Invoke, e.Name)}
	}
	rec.Detail["decision"], rec.Detail["results"] = "allow", len(hits)
	if err := pl.write(ctx, rec); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"tools": hits})
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(body)}},
		StructuredContent: map[string]any{"tools": hits}}, nil
}

// approvalStatus serves the built-in approval_status: the caller's own
// requests only (another user's id answers like an unknown one).
func (pl *Pipeline) approvalStatus(ctx context.Context, c *toolCall) (mcp.Result, error) {
	p, rec, args, argErr := c.p, c.rec, c.req.Args.value, c.req.ArgErr
	var in struct {
		ID string `json:"id"`
	}
	if argErr == nil {
		b, _ := json.Marshal(args)
		argErr = strictjson.Decode(b, &in)
	}
	if argErr != nil || (in.ID != "" && !approval.ValidID(in.ID)) {
		return nil, pl.Deny(ctx, rec, ReasonBadArguments, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: "invalid arguments for tool \"approval_status\": want {\"id\": \"apr_…\"} or {}"})
	}
	mine, err := pl.cfg.Approvals.Mine(ctx, p.User, in.ID)
	if err != nil {
		return nil, pl.Deny(ctx, rec, ReasonApprovalsDown, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "approvals are unavailable"})
	}
	type item struct {
		ID        string    `json:"id"`
		Status    string    `json:"status"`
		Tool      string    `json:"tool"`
		Reasons   []string  `json:"reasons"`
		RiskScore int       `json:"risk_score"`
		Approvals int       `json:"approvals"`
		Needs     []string  `json:"needs"`
		ExpiresAt time.Time `json:"expires_at"`
		Next      string    `json:"next"`
	}
	items := []item{}
	for _, a := range mine {
		it := item{ID: a.ID, Status: string(a.Status), Tool: a.Tool, Reasons: a.Decision.Reasons, RiskScore: a.Decision.Score, ExpiresAt: a.ExpiresAt, Needs: a.Needs()}
		for _, v := range a.Votes {
			if v.Approve {
				it.Approvals++
			}
		}
		switch a.Status {
		case approval.Pending:
			it.Next = "wait for the approvers"
		case approval.Approved:
			it.Next = "repeat exactly the same call (same tool and arguments) to run it, once"
		case approval.Used:
			it.Next = "done: the approved call ran"
		default:
			it.Next = "the call will not run; ask again by repeating it if it is still needed"
		}
		items = append(items, it)
	}
	rec.Detail["decision"], rec.Detail["results"] = "allow", len(items)
	if err := pl.write(ctx, rec); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"approvals": items})
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(body)}},
		StructuredContent: map[string]any{"approvals": items}}, nil
}
