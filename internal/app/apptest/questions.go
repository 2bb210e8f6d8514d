//lint:file-ignore SA1019 sampling, elicitation and roots are deprecated as of 2026-07-28 (SEP-2577) but still relayed and governed; this file exercises them.

package apptest

import (
	"context"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Questioner is a fixture upstream's pair of tools that ask the user's
// client something during a call, and the ledger of what they got back.
type Questioner struct {
	mu       sync.Mutex
	outcomes []string
}

// QuestionIn are the arguments of the Questioner's tools: kind is "form",
// "url" or "sampling"; url the URL a url-mode elicitation shows.
type QuestionIn struct {
	Kind string `json:"kind"`
	URL  string `json:"url,omitempty"`
}

func (q *Questioner) note(s string) {
	q.mu.Lock()
	q.outcomes = append(q.outcomes, s)
	q.mu.Unlock()
}

// Outcomes lists, in order, what the upstream got: "refused: MESSAGE" (a
// JSON-RPC error answered its request), the action or model an answer
// carried ("accept", "model:NAME"), "asked" for an input_required result
// it returned.
func (q *Questioner) Outcomes() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.outcomes...)
}

// AddQuestioner adds the tools "ask_session" (a session-based upstream's
// request during the call: elicitation/create or sampling/createMessage)
// and "ask_mrtr" (2026-07-28: an input_required result with the question
// under id "q" and requestState "q-1"; with an answer and that state it
// returns done).
func (u *Upstream) AddQuestioner() *Questioner {
	q := &Questioner{}
	mcp.AddTool(u.mcp, &mcp.Tool{Name: "ask_session", Description: "Ask the user's client during the call."},
		func(ctx context.Context, req *mcp.CallToolRequest, in QuestionIn) (*mcp.CallToolResult, map[string]any, error) {
			u.record(req, "ask_session")
			if in.Kind == "sampling" {
				res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
					Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "Summarise."}}}})
				if err != nil {
					q.note("refused: " + err.Error())
					return nil, nil, err
				}
				q.note("model:" + res.Model)
				return nil, map[string]any{"model": res.Model}, nil
			}
			res, err := req.Session.Elicit(ctx, question(in).(*mcp.ElicitParams))
			if err != nil {
				q.note("refused: " + err.Error())
				return nil, nil, err
			}
			q.note(res.Action)
			return nil, map[string]any{"action": res.Action}, nil
		})
	mcp.AddTool(u.mcp, &mcp.Tool{Name: "ask_mrtr", Description: "Ask the user's client with input_required."},
		func(ctx context.Context, req *mcp.CallToolRequest, in QuestionIn) (*mcp.CallToolResult, map[string]any, error) {
			u.record(req, "ask_mrtr")
			if a, ok := req.Params.InputResponses["q"]; ok && req.Params.RequestState == "q-1" {
				switch a := a.(type) {
				case *mcp.ElicitResult:
					q.note(a.Action)
				case *mcp.CreateMessageResult:
					q.note("model:" + a.Model)
				}
				return nil, map[string]any{"done": true}, nil
			}
			q.note("asked")
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"q": question(in)}, RequestState: "q-1"}, nil, nil
		})
	return q
}

// question is the request in asks for.
func question(in QuestionIn) mcp.InputRequest {
	switch in.Kind {
	case "sampling":
		return &mcp.CreateMessageParams{MaxTokens: 10, Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "Summarise."}}}}
	case "url":
		return &mcp.ElicitParams{Mode: "url", Message: "Sign in", URL: in.URL, ElicitationID: "e-1"}
	}
	return &mcp.ElicitParams{Message: "Your name?", RequestedSchema: map[string]any{"type": "object",
		"properties": map[string]any{"name": map[string]any{"type": "string"}}}}
}
