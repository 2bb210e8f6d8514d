package govern

import (
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// target is what a request names, resolved in one catalog snapshot: the
// stage every request starts with. Prompts and resources share the tools'
// grants: discover lists them, invoke calls a tool, gets a prompt (and
// completes its arguments) or reads a resource; resources are governed
// under their upstream's namespace and display name. A hidden target
// answers exactly like a missing one (notFound).
type target struct {
	ref      string // on the record: "tool:NAME", "prompt:NAME", "resource:URI"
	name     string // what grants and kill switches name
	found    bool   // in the catalog, with its upstream
	notFound error  // what the client sees if it is missing, hidden or killed
	upstream spec.Upstream
	tool     *catalog.Entry // for a tool
	prompt   *catalog.PromptEntry
	resource *catalog.ResourceEntry
}

// subject is what a kill switch on p's request of t must cover.
func (t target) subject(p *authn.Principal) killswitch.Subject {
	return killswitch.Subject{User: p.User, KeyID: p.KeyID, Upstream: t.upstream.Name, Tool: t.name}
}

// withUpstream completes t with its upstream from snap.
func (t target) withUpstream(snap *catalog.Snapshot, name string) target {
	t.upstream, t.found = snap.Upstream(name)
	return t
}

func resolveTool(snap *catalog.Snapshot, name string) target {
	t := target{ref: "tool:" + name, name: name, notFound: unknownTool(name)}
	if e, ok := snap.Lookup(name); ok {
		t.tool = e
		t = t.withUpstream(snap, e.Upstream)
	}
	return t
}

func resolvePrompt(snap *catalog.Snapshot, name string) target {
	t := target{ref: "prompt:" + name, name: name, notFound: unknownPrompt(name)}
	if e, ok := snap.Prompt(name); ok {
		t.prompt = e
		t = t.withUpstream(snap, e.Upstream)
	}
	return t
}

// resolveResource resolves a resource's URI, or with template a resource
// template's (for completion).
func resolveResource(snap *catalog.Snapshot, uri string, template bool) target {
	t := target{ref: "resource:" + uri, notFound: mcp.ResourceNotFoundError(uri)}
	var e *catalog.ResourceEntry
	var ok bool
	if template {
		e, ok = snap.Template(uri)
	} else {
		e, ok = snap.ResolveURI(uri)
	}
	if ok {
		t.resource, t.name = e, e.Name
		t = t.withUpstream(snap, e.Upstream)
	}
	return t
}

func unknownTool(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
}

func unknownPrompt(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", name)}
}
