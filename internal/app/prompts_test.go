package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

// Prompts are governed by the tools' grants: discover lists, invoke gets and
// completes; a hidden prompt looks exactly like a missing one.
func TestGatewayPrompts(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddPrompt()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "writer", []string{"invoke:fin.greeting"}, "alice", false)
	setup(t, s, "reader", []string{"invoke:fin.lookup"}, "bob", false)
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	bobKey, _ := newKey(t, s, map[string]any{"user": "bob"})
	ctx := context.Background()
	for _, era := range []string{"2025-11-25", ""} {
		alice, err := s.Client(t, aliceKey, era)
		if err != nil {
			t.Fatal(err)
		}
		bob, err := s.Client(t, bobKey, era)
		if err != nil {
			t.Fatal(err)
		}
		list, err := alice.ListPrompts(ctx, nil)
		if err != nil || len(list.Prompts) != 1 || list.Prompts[0].Name != "fin.greeting" {
			t.Fatalf("alice's prompts: %+v %v", list, err)
		}
		if list, err := bob.ListPrompts(ctx, nil); err != nil || len(list.Prompts) != 0 {
			t.Errorf("bob's prompts: %+v %v", list, err)
		}
		got, err := alice.GetPrompt(ctx, &mcp.GetPromptParams{Name: "fin.greeting", Arguments: map[string]string{"name": "Ada"}})
		if err != nil || got.Messages[0].Content.(*mcp.TextContent).Text != "Hello, Ada" {
			t.Fatalf("alice gets: %+v %v", got, err)
		}
		comp, err := alice.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "fin.greeting"},
			Argument: mcp.CompleteParamsArgument{Name: "name", Value: "A"}})
		if err != nil || len(comp.Completion.Values) != 2 {
			t.Errorf("alice completes: %+v %v", comp, err)
		}
		before := up.PromptGets()
		_, hidden := bob.GetPrompt(ctx, &mcp.GetPromptParams{Name: "fin.greeting"})
		_, missing := bob.GetPrompt(ctx, &mcp.GetPromptParams{Name: "fin.nope"})
		if hidden == nil || missing == nil || hidden.Error() != strings.ReplaceAll(missing.Error(), "fin.nope", "fin.greeting") {
			t.Errorf("hidden %v vs missing %v", hidden, missing)
		}
		if _, err := bob.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/prompt", Name: "fin.greeting"},
			Argument: mcp.CompleteParamsArgument{Name: "name", Value: "A"}}); err == nil {
			t.Error("bob completed a prompt he may not get")
		}
		if up.PromptGets() != before {
			t.Error("a refused prompt get reached the upstream")
		}
	}
	if recs := records(t, s, audit.Query{Event: "prompt-get", Outcome: audit.Denied}); len(recs) != 4 {
		t.Errorf("denied prompt-get records: %d, want 4", len(recs))
	}
}
