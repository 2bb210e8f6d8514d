package catalog

import (
	"cmp"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/yosida95/uritemplate/v3"

	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Entry is one tool as clients see it: its pinned definition under its
// exposed name.
type Entry struct {
	Name         string // exposed name
	Upstream     string
	UpstreamTool string
	Version      int
	Digest       string
	Tool         *mcp.Tool // pinned definition, Name = exposed name
	Pending      int       // versions awaiting review
	Vanished     bool      // the upstream no longer lists it
	// Changed: the upstream presented a definition other than the pinned
	// one and no activation has acknowledged it. Calls are refused, unless
	// KeepPinned (its upstream's on_change) lets them run under the pinned
	// definition.
	Changed    bool
	KeepPinned bool
	// CallTimeout bounds a call (the tightest of the tool's, its
	// upstream's and the server's); 0 here: the tool sets none.
	CallTimeout time.Duration
	// Schema validates arguments against the pinned input schema. If the
	// schema cannot be compiled, SchemaErr says why and calls are refused.
	Schema    *jsonschema.Schema
	SchemaErr error
	// ParamHeaders are the arguments mirrored in Mcp-Param-* headers.
	ParamHeaders []ParamHeader
	// Labels are Ostiary's governance labels (nil: not labelled); Hints
	// the pinned definition's annotations, which stand in until then.
	Labels *policy.Labels
	Hints  policy.Hints
	words  string // lower-cased name and description, for search
}

// Snapshot is an immutable view of the catalog for the hot path: no
// database round trip per request.
type Snapshot struct {
	upstreams map[string]spec.Upstream
	entries   []*Entry // sorted by Name
	byName    map[string]*Entry
	held      []*Entry // tools with no active version yet: never listed or callable; sorted by Name
	byHeld    map[string]*Entry
	prompts   []*PromptEntry // sorted by Name
	byPrompt  map[string]*PromptEntry
	resources []*ResourceEntry // concrete resources and templates, sorted by Name, then URI
	byURI     map[string]*ResourceEntry
	byRes     map[string]*ResourceEntry // by Name: the first (all share its upstream)
}

// ResourceEntry is one resource or resource template as clients see it,
// identified by its URI (a template by its URI template). It is governed
// under Name (its upstream's namespace and its display name, which other
// resources of the same upstream may share) by the same grants as tools:
// discover lists it, invoke reads it.
type ResourceEntry struct {
	Name     string
	Upstream string
	Resource *mcp.Resource         // nil for a template
	Template *mcp.ResourceTemplate // nil for a concrete resource
	match    *regexp.Regexp        // a template's URI matcher
}

// PromptEntry is one prompt as clients see it.
type PromptEntry struct {
	Name         string // exposed name
	Upstream     string
	UpstreamName string
	Prompt       *mcp.Prompt // Name = exposed name
}

func newSnapshot(ups []spec.Upstream, tools []ToolState, listed map[string]spec.Listing) *Snapshot {
	s := &Snapshot{upstreams: map[string]spec.Upstream{}, byName: map[string]*Entry{}, byHeld: map[string]*Entry{}, byPrompt: map[string]*PromptEntry{},
		byURI: map[string]*ResourceEntry{}, byRes: map[string]*ResourceEntry{}}
	for _, u := range ups {
		s.upstreams[u.Name] = u
	}
	for _, ts := range tools {
		u, ok := s.upstreams[ts.Upstream]
		if !ok {
			continue
		}
		e := &Entry{Name: u.Expose(ts.Tool), Upstream: u.Name, UpstreamTool: ts.Tool, Vanished: ts.Vanished, CallTimeout: ts.CallTimeout, Labels: ts.Labels,
			Changed: !ts.ChangedAt.IsZero(), KeepPinned: u.OnChange == spec.OnChangeKeepPinned}
		for _, v := range ts.Versions {
			switch v.Status {
			case Active:
				var t mcp.Tool
				if json.Unmarshal(v.Definition, &t) != nil {
					continue
				}
				t.Name = e.Name
				e.Tool, e.Version, e.Digest = &t, v.Version, v.Digest
				e.Schema, e.SchemaErr = compileSchema(v.Definition)
				e.ParamHeaders = ParamHeaders(v.Definition)
				e.Hints = hints(t.Annotations)
				e.words = strings.ToLower(e.Name + " " + t.Title + " " + t.Description)
			case Pending:
				e.Pending++
			}
		}
		if e.Tool == nil {
			if e.Pending > 0 {
				s.held = append(s.held, e)
				s.byHeld[e.Name] = e
			}
			continue
		}
		s.entries = append(s.entries, e)
		s.byName[e.Name] = e
	}
	slices.SortFunc(s.entries, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.held, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	for _, u := range s.Upstreams() { // in name order: the first claim of a name wins
		s.addResources(u, listed[u.Name])
		for _, pr := range listed[u.Name].Prompts {
			name := u.Expose(pr.Name)
			if _, taken := s.byPrompt[name]; taken {
				continue
			}
			cp := *pr
			cp.Name = name
			e := &PromptEntry{Name: name, Upstream: u.Name, UpstreamName: pr.Name, Prompt: &cp}
			s.prompts = append(s.prompts, e)
			s.byPrompt[name] = e
		}
	}
	slices.SortFunc(s.prompts, func(a, b *PromptEntry) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// addResources adds an upstream's resources and templates. They are
// identified by URI (a template by its URI template) and may share a name
// within their upstream; a name another upstream already holds is not
// added (its grants would cover both), nor is a URI another upstream holds.
func (s *Snapshot) addResources(u spec.Upstream, l spec.Listing) {
	add := func(e *ResourceEntry) bool {
		if prev, taken := s.byRes[e.Name]; taken && prev.Upstream != e.Upstream {
			return false
		} else if !taken {
			s.byRes[e.Name] = e
		}
		s.resources = append(s.resources, e)
		return true
	}
	for _, r := range l.Resources {
		if _, taken := s.byURI[r.URI]; taken {
			continue
		}
		e := &ResourceEntry{Name: u.Expose(r.Name), Upstream: u.Name, Resource: r}
		if add(e) {
			s.byURI[r.URI] = e
		}
	}
	for _, t := range l.Templates {
		tmpl, err := uritemplate.New(t.URITemplate)
		if err != nil {
			continue // an unusable template is not exposed
		}
		add(&ResourceEntry{Name: u.Expose(t.Name), Upstream: u.Name, Template: t, match: tmpl.Regexp()})
	}
	slices.SortStableFunc(s.resources, func(a, b *ResourceEntry) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.id(), b.id()))
	})
}

// id is what identifies a resource entry: its URI, or its URI template.
func (e *ResourceEntry) id() string {
	if e.Resource != nil {
		return e.Resource.URI
	}
	return e.Template.URITemplate
}

// ResolveURI finds the resource entry a URI belongs to: a listed resource,
// else the first (by name) template that matches it.
func (s *Snapshot) ResolveURI(uri string) (*ResourceEntry, bool) {
	if e, ok := s.byURI[uri]; ok {
		return e, true
	}
	for _, e := range s.resources {
		if e.Template != nil && e.match.MatchString(uri) {
			return e, true
		}
	}
	return nil, false
}

// Template finds a resource template by its URI template (for completion).
func (s *Snapshot) Template(uriTemplate string) (*ResourceEntry, bool) {
	for _, e := range s.resources {
		if e.Template != nil && e.Template.URITemplate == uriTemplate {
			return e, true
		}
	}
	return nil, false
}

// VisibleResources returns the concrete resources and the templates for
// which allow returns true.
func (s *Snapshot) VisibleResources(allow func(name string) bool) ([]*mcp.Resource, []*mcp.ResourceTemplate) {
	rs, ts := []*mcp.Resource{}, []*mcp.ResourceTemplate{}
	for _, e := range s.resources {
		switch {
		case !allow(e.Name):
		case e.Resource != nil:
			rs = append(rs, e.Resource)
		default:
			ts = append(ts, e.Template)
		}
	}
	return rs, ts
}

// uriOwner names the other upstream that already has a resource at uri.
func (s *Snapshot) uriOwner(uri, self string) string {
	if e, ok := s.byURI[uri]; ok && e.Upstream != self {
		return e.Upstream
	}
	return ""
}

// UpstreamOf names the upstream of an exposed tool, prompt or resource name
// ("" if none).
func (s *Snapshot) UpstreamOf(name string) string {
	if e, ok := s.byName[name]; ok {
		return e.Upstream
	}
	if e, ok := s.byPrompt[name]; ok {
		return e.Upstream
	}
	if e, ok := s.byRes[name]; ok {
		return e.Upstream
	}
	return ""
}

// Prompt returns the prompt a client may address by name.
func (s *Snapshot) Prompt(name string) (*PromptEntry, bool) {
	e, ok := s.byPrompt[name]
	return e, ok
}

// VisiblePrompts returns the prompts for which allow returns true.
func (s *Snapshot) VisiblePrompts(allow func(name string) bool) []*mcp.Prompt {
	out := make([]*mcp.Prompt, 0, len(s.prompts))
	for _, e := range s.prompts {
		if allow(e.Name) {
			out = append(out, e.Prompt)
		}
	}
	return out
}

// claimListed is claim for prompt and resource names.
func (s *Snapshot) claimListed(kind, name, self string) (owner string, shadowed string) {
	switch kind {
	case "prompt":
		if e, ok := s.byPrompt[name]; ok && e.Upstream != self {
			owner = e.Upstream
		}
	default:
		if e, ok := s.byRes[name]; ok && e.Upstream != self {
			owner = e.Upstream
		}
	}
	return owner, s.namespaceOf(name, self)
}

// Lookup returns the entry a client may address by name; vanished tools
// cannot be called.
func (s *Snapshot) Lookup(name string) (*Entry, bool) {
	e, ok := s.byName[name]
	if !ok || e.Vanished {
		return nil, false
	}
	return e, true
}

// Entries returns every entry, vanished ones included, sorted by name.
func (s *Snapshot) Entries() []*Entry { return s.entries }

// Held returns the tools that have no active version yet (pending review
// since they appeared), sorted by name. Their Tool is nil: they are never
// listed to clients nor callable.
func (s *Snapshot) Held() []*Entry { return s.held }

// entry finds an exposed name among the entries and the held tools, for
// review (versions, activation); never for calls.
func (s *Snapshot) entry(name string) (*Entry, bool) {
	if e, ok := s.byName[name]; ok {
		return e, true
	}
	e, ok := s.byHeld[name]
	return e, ok
}

// State is how a catalog entry stands, for admins: "pending" (held: no
// version active yet), "vanished", "changed" (calls refused until a
// version is activated), "changed-keep-pinned" (calls run under the pinned
// definition), else "ok".
func (e *Entry) State() string {
	switch {
	case e.Tool == nil:
		return "pending"
	case e.Vanished:
		return "vanished"
	case e.Changed && e.KeepPinned:
		return "changed-keep-pinned"
	case e.Changed:
		return "changed"
	}
	return "ok"
}

// Upstream returns a configured upstream.
func (s *Snapshot) Upstream(name string) (spec.Upstream, bool) {
	u, ok := s.upstreams[name]
	return u, ok
}

// Upstreams returns every configured upstream.
func (s *Snapshot) Upstreams() []spec.Upstream {
	out := make([]spec.Upstream, 0, len(s.upstreams))
	for _, u := range s.upstreams {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b spec.Upstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Visible returns the callable tools for which allow returns true, in name
// order.
func (s *Snapshot) Visible(allow func(name string) bool) []*mcp.Tool {
	out := make([]*mcp.Tool, 0, len(s.entries))
	for _, e := range s.entries {
		if !e.Vanished && allow(e.Name) {
			out = append(out, e.Tool)
		}
	}
	return out
}

// Search returns the visible entries whose name or description contains
// every word of query (case-insensitive), at most limit of them.
func (s *Snapshot) Search(query string, allow func(name string) bool, limit int) []*Entry {
	words := strings.Fields(strings.ToLower(query))
	var out []*Entry
	for _, e := range s.entries {
		if e.Vanished || !allow(e.Name) {
			continue
		}
		match := true
		for _, w := range words {
			if !strings.Contains(e.words, w) {
				match = false
				break
			}
		}
		if match {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

// claim reports who (which upstream) owns an exposed name, and whether the
// name falls inside another upstream's namespace.
func (s *Snapshot) claim(name, self string) (owner string, shadowed string) {
	if e, ok := s.entry(name); ok && e.Upstream != self {
		owner = e.Upstream
	}
	return owner, namespaceWithin(name, self, s.Upstreams())
}

// skeletons maps the skeleton of every exposed tool name (held ones
// included) to the names that have it (one, unless the catalog predates
// the rule).
func (s *Snapshot) skeletons() map[string][]string {
	out := make(map[string][]string, len(s.entries)+len(s.held))
	for _, list := range [][]*Entry{s.entries, s.held} {
		for _, e := range list {
			sk := Skeleton(e.Name)
			out[sk] = append(out[sk], e.Name)
		}
	}
	return out
}

// namespaceOf names the other upstream whose namespace name falls in.
func (s *Snapshot) namespaceOf(name, self string) string {
	if ns, _, ok := strings.Cut(name, "."); ok {
		for _, u := range s.upstreams {
			if u.Name != self && u.Prefix == ns {
				return u.Name
			}
		}
	}
	return ""
}

// compileSchema compiles a definition's inputSchema (JSON Schema 2020-12 by
// default). The loader knows no URL scheme, so a $ref can never read a file
// or fetch a URL.
func compileSchema(def json.RawMessage) (*jsonschema.Schema, error) {
	tree, err := strictjson.Parse(def)
	if err != nil {
		return nil, err
	}
	obj, _ := tree.(map[string]any)
	schema, ok := obj["inputSchema"]
	if !ok {
		return nil, errors.New("tool has no inputSchema")
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "urn:ostiary:tool-input"
	if err := c.AddResource(loc, schema); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}

// hints reads MCP tool annotations with the protocol's defaults: a tool
// that does not say otherwise is not read-only, destructive, not
// idempotent and open-world.
func hints(a *mcp.ToolAnnotations) policy.Hints {
	if a == nil {
		return policy.Hints{Destructive: true, OpenWorld: true}
	}
	return policy.Hints{ReadOnly: a.ReadOnlyHint, Idempotent: a.IdempotentHint,
		Destructive: a.DestructiveHint == nil || *a.DestructiveHint,
		OpenWorld:   a.OpenWorldHint == nil || *a.OpenWorldHint}
}

// PolicyTool is what the policy knows of e.
func (e *Entry) PolicyTool() policy.Tool {
	return policy.Tool{Name: e.Name, Upstream: e.Upstream, Version: e.Version, Labels: e.Labels, Hints: e.Hints}
}
