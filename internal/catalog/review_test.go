package catalog

import (
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// A tool with only a pending version is held: found for review, never for
// calls, listing or search. A changed tool stays callable only on an
// upstream that keeps it pinned; the gateway reads Changed and KeepPinned.
func TestSnapshotHeldAndChanged(t *testing.T) {
	def, digest, err := Definition(&mcp.Tool{Name: "exec", Description: "run", InputSchema: map[string]any{"type": "object"}})
	if err != nil {
		t.Fatal(err)
	}
	ups := []spec.Upstream{{Name: "fs", Prefix: "fs"}, {Name: "kp", Prefix: "kp", OnChange: spec.OnChangeKeepPinned}}
	version := func(up string, s Status) []Version {
		return []Version{{Upstream: up, Version: 1, Digest: digest, Definition: def, Status: s}}
	}
	s := newSnapshot(ups, []ToolState{
		{Upstream: "fs", Tool: "exec", Versions: version("fs", Pending)},
		{Upstream: "fs", Tool: "read", Versions: version("fs", Active), ChangedAt: time.Now()},
		{Upstream: "kp", Tool: "read", Versions: version("kp", Active), ChangedAt: time.Now()},
		{Upstream: "kp", Tool: "ok", Versions: version("kp", Active)},
	}, nil)
	all := func(string) bool { return true }
	if _, ok := s.Lookup("fs.exec"); ok {
		t.Error("a held tool can be looked up for a call")
	}
	for _, tool := range s.Visible(all) {
		if tool.Name == "fs.exec" {
			t.Error("a held tool is listed")
		}
	}
	if len(s.Search("run", all, 10)) != 3 { // the three active ones share the description; not the held one
		t.Errorf("search: %d hits", len(s.Search("run", all, 10)))
	}
	if e, ok := s.entry("fs.exec"); !ok || e.State() != "pending" || len(s.Held()) != 1 {
		t.Errorf("held tool for review: %+v %v", e, ok)
	}
	for name, want := range map[string]string{"fs.read": "changed", "kp.read": "changed-keep-pinned", "kp.ok": "ok"} {
		if e, ok := s.Lookup(name); !ok || e.State() != want {
			t.Errorf("%s: state %v, want %s", name, e, want)
		}
	}
	if e, _ := s.Lookup("fs.read"); !e.Changed || e.KeepPinned {
		t.Errorf("fs.read: changed %v keep-pinned %v", e.Changed, e.KeepPinned)
	}
	if owner, _ := s.claim("fs.exec", "kp"); owner != "fs" {
		t.Errorf("a held name is not claimed: %q", owner)
	}
}
