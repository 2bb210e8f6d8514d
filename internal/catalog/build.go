package catalog

import "github.com/ostiary/ostiary/internal/upstream/spec"

// NewSnapshot builds a snapshot from the catalog's state as a store holds
// it (what the service does on every reload): the upstreams, their tools'
// versions and labels, and what each upstream listed of prompts and
// resources. Tools of an upstream not among ups are left out, as are
// tools with no active version (held, if a version is pending).
func NewSnapshot(ups []spec.Upstream, tools []ToolState, listed map[string]spec.Listing) *Snapshot {
	return newSnapshot(ups, tools, listed)
}
