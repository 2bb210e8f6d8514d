package catalog

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Resources are identified by URI: two of one upstream may share a display
// name and both are listed and readable; another upstream may neither take
// a URI already held nor a namespaced name (grants on that name would then
// cover its resource too).
func TestSnapshotResourcesByURI(t *testing.T) {
	ups := []spec.Upstream{{Name: "a", Prefix: ""}, {Name: "b", Prefix: ""}}
	listed := map[string]spec.Listing{
		"a": {Resources: []*mcp.Resource{{Name: "README.md", URI: "file:///x/README.md"}, {Name: "README.md", URI: "file:///y/README.md"}},
			Templates: []*mcp.ResourceTemplate{{Name: "Dynamic Text Resource", URITemplate: "demo://text/{id}"}, {Name: "Dynamic Text Resource", URITemplate: "demo://blob/{id}"}}},
		"b": {Resources: []*mcp.Resource{{Name: "README.md", URI: "file:///z/README.md"}, {Name: "other", URI: "file:///x/README.md"}}},
	}
	s := newSnapshot(ups, nil, listed)
	rs, ts := s.VisibleResources(func(string) bool { return true })
	if len(rs) != 2 || rs[0].URI != "file:///x/README.md" || rs[1].URI != "file:///y/README.md" {
		t.Errorf("resources: %+v", rs)
	}
	if len(ts) != 2 {
		t.Errorf("templates: %+v", ts)
	}
	for uri, want := range map[string]string{"file:///y/README.md": "a", "demo://blob/7": "a", "demo://text/7": "a"} {
		if e, ok := s.ResolveURI(uri); !ok || e.Upstream != want {
			t.Errorf("%s resolves to %+v %v, want upstream %s", uri, e, ok, want)
		}
	}
	if _, ok := s.ResolveURI("file:///z/README.md"); ok {
		t.Error("b's resource under a's name was added")
	}
	if owner, _ := s.claimListed("resource", "README.md", "b"); owner != "a" {
		t.Errorf("claim of README.md by b: owner %q", owner)
	}
	if s.uriOwner("file:///x/README.md", "b") != "a" {
		t.Error("a's URI is not claimed against b")
	}
}
