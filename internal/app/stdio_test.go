package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

// A stdio upstream: each user gets their own process (sessions are never
// shared), each call runs as its user, each spawn is audited.
func TestStdioUpstreamPerUser(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "shop", "command": []string{os.Args[0], "demo-upstream"}})
	mustStatus(t, r, http.StatusCreated)
	setup(t, s, "support", []string{"invoke:shop.lookup_order", "invoke:shop.customer_profile"}, "alice", false)
	setup(t, s, "bot", []string{"invoke:shop.lookup_order"}, "order-bot", true)
	aliceKey, _ := newKey(t, s, map[string]any{"user": "alice"})
	botKey, _ := newKey(t, s, map[string]any{"user": "order-bot"})
	for _, era := range []string{"", "2025-11-25"} {
		alice, err := s.Client(t, aliceKey, era)
		if err != nil {
			t.Fatal(err)
		}
		bot, err := s.Client(t, botKey, era)
		if err != nil {
			t.Fatal(err)
		}
		if got := toolNames(t, bot); !slices.Equal(got, []string{"approval_status", "discover_tools", "shop.lookup_order"}) {
			t.Errorf("bot sees %v", got)
		}
		for user, cs := range map[string]*mcp.ClientSession{"alice": alice, "order-bot": bot} {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "shop.lookup_order", Arguments: map[string]any{"order_id": "A-1001"}})
			if err != nil || res.IsError {
				t.Fatalf("%s: %+v %v", user, res, err)
			}
			b, _ := json.Marshal(res.StructuredContent)
			if !strings.Contains(string(b), `"served_to":"`+user+`"`) {
				t.Errorf("%s's call was served to %s", user, b)
			}
		}
		if _, err := bot.CallTool(context.Background(), &mcp.CallToolParams{Name: "shop.customer_profile", Arguments: map[string]any{"customer_id": "C-7"}}); err == nil {
			t.Error("the bot read personal data")
		}
	}
	spawns := records(t, s, audit.Query{Event: "upstream-spawn"})
	users := map[string]int{}
	for _, r := range spawns {
		users[r.Actor]++
	}
	// One short-lived catalog session at add time, then one process per user,
	// reused across both eras.
	if users["alice"] != 1 || users["order-bot"] != 1 || users["ostiary"] != 1 {
		t.Errorf("spawns by user: %v", users)
	}
}
