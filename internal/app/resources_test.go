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

// Resources are governed by the tools' grants under their upstream's
// namespace and name: discover lists, invoke reads; a hidden resource (or a
// URI matching a hidden template) answers exactly like a missing one.
func TestGatewayResources(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddResources()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "auditor-ish", []string{"invoke:fin.ledger", "invoke:fin.account"}, "alice", false)
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
		rs, err := alice.ListResources(ctx, nil)
		if err != nil || len(rs.Resources) != 1 || rs.Resources[0].URI != "fixture://ledger" {
			t.Fatalf("alice's resources: %+v %v", rs, err)
		}
		ts, err := alice.ListResourceTemplates(ctx, nil)
		if err != nil || len(ts.ResourceTemplates) != 1 {
			t.Fatalf("alice's templates: %+v %v", ts, err)
		}
		if rs, err := bob.ListResources(ctx, nil); err != nil || len(rs.Resources) != 0 {
			t.Errorf("bob's resources: %+v %v", rs, err)
		}
		for uri, want := range map[string]string{"fixture://ledger": "balance: 42", "fixture://accounts/7": "account fixture://accounts/7"} {
			got, err := alice.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
			if err != nil || got.Contents[0].Text != want {
				t.Errorf("alice reads %s: %+v %v", uri, got, err)
			}
		}
		_, hidden := bob.ReadResource(ctx, &mcp.ReadResourceParams{URI: "fixture://accounts/7"})
		_, missing := bob.ReadResource(ctx, &mcp.ReadResourceParams{URI: "fixture://elsewhere/7"})
		if hidden == nil || missing == nil {
			t.Fatalf("bob read: hidden %v, missing %v", hidden, missing)
		}
		if hidden.Error() != missing.Error() || !strings.Contains(hidden.Error(), "Resource not found") {
			t.Errorf("hidden %q vs missing %q", hidden, missing)
		}
	}
	if recs := records(t, s, audit.Query{Event: "resource-read", Outcome: audit.Denied}); len(recs) != 4 {
		t.Errorf("denied resource-read records: %d, want 4", len(recs))
	}
}
