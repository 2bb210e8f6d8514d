package catalog

import "github.com/ostiary/ostiary/internal/upstream"

// NewSnapshot builds a snapshot from the catalog's state as a store holds
// it (what the service does on every reload): the upstreams, their tools'
// versions and labels, and what each upstream listed of prompts and
// resources. Tools of an upstream not among ups are left out, as are
// tools with no active version (held, if a version is pending).
func NewSnapshot(ups []upstream.Upstream, tools []ToolState, listed map[string]upstream.Listing) *Snapshot {
	return newSnapshot(ups, tools, listed)
}
