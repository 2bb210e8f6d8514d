package catalog

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

func bigSnapshot(tb testing.TB, n int) *Snapshot {
	tb.Helper()
	ups := []spec.Upstream{{Name: "a", Prefix: "a"}, {Name: "b", Prefix: "b"}}
	var tools []ToolState
	for i := range n {
		up := ups[i%2].Name
		def, digest, err := Definition(&mcp.Tool{Name: fmt.Sprintf("tool%04d", i), Description: "does thing number " + fmt.Sprint(i),
			InputSchema: json.RawMessage(`{"type":"object","properties":{"x":{"type":"string"}}}`)})
		if err != nil {
			tb.Fatal(err)
		}
		tools = append(tools, ToolState{Upstream: up, Tool: fmt.Sprintf("tool%04d", i),
			Versions: []Version{{Upstream: up, Version: 1, Digest: digest, Definition: def, Status: Active}}})
	}
	return newSnapshot(ups, tools, nil)
}

func TestSnapshotVisibleAndShadowing(t *testing.T) {
	s := bigSnapshot(t, 10)
	perms := authz.Permissions{Roles: authz.Grants{{Action: authz.Invoke, Resource: "a.*"}}}
	got := s.Visible(func(name string) bool { return perms.Allows(authz.Discover, name) })
	if len(got) != 5 || got[0].Name != "a.tool0000" {
		t.Fatalf("visible: %d, first %s", len(got), got[0].Name)
	}
	for _, e := range s.Entries() {
		if e.Schema == nil || e.SchemaErr != nil {
			t.Fatalf("%s: schema %v", e.Name, e.SchemaErr)
		}
	}
	// A transparent upstream may not place a tool in another's namespace.
	if owner, _ := s.claim("a.tool0000", "c"); owner != "a" {
		t.Errorf("collision owner %q", owner)
	}
	if _, shadowed := s.claim("a.new", "c"); shadowed != "a" {
		t.Errorf("shadowing not detected: %q", shadowed)
	}
	if owner, shadowed := s.claim("a.new", "a"); owner != "" || shadowed != "" {
		t.Errorf("an upstream's own namespace: %q %q", owner, shadowed)
	}
}

// BenchmarkListTools1000 is tools/list of a 1,000-tool catalog filtered by
// one caller's grants, the per-request work of the gateway (target < 1 ms).
func BenchmarkListTools1000(b *testing.B) {
	s := bigSnapshot(b, 1000)
	perms := authz.Permissions{
		Roles: authz.Grants{{Action: authz.Invoke, Resource: "a.*"}, {Action: authz.Discover, Resource: "b.tool00*"}},
		Scope: authz.Grants{{Action: authz.Discover, Resource: "*"}},
	}
	for b.Loop() {
		if got := s.Visible(func(name string) bool { return perms.Allows(authz.Discover, name) }); len(got) != 550 { // 500 of a, 50 of b (odd numbers below 100)
			b.Fatalf("visible %d", len(got))
		}
	}
}
