package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Audit event types of the catalog.
const (
	EventUpstreamAdd    = "upstream-add"
	EventUpstreamRemove = "upstream-remove"
	EventUpstreamList   = "upstream-list"
	EventUpstreamSync   = "upstream-sync"
	EventUpstreamDoc    = "upstream-document-set" // an OpenAPI upstream's stored document replaced
	EventToolCreated    = "tool-version-created"
	EventToolPending    = "tool-version-pending"
	EventToolActivated  = "tool-version-activated"
	EventToolVanished   = "tool-vanished"
	EventToolReappeared = "tool-reappeared"
	EventToolRefused    = "tool-refused"
	EventToolChanged    = "tool-definition-changed" // presented differs from pinned: calls refused until reviewed
	EventCatalogList    = "catalog-list"
	EventToolVersions   = "tool-versions"
	EventToolTimeout    = "tool-timeout-set"
	EventToolLabels     = "tool-labels-set"
)

// Catalog keeps the tool catalog and its in-memory snapshot.
type Catalog struct {
	store  Store
	audit  Auditor
	lister Lister
	now    func() time.Time
	log    *slog.Logger

	snap    atomic.Pointer[Snapshot]
	holdNew atomic.Bool // tool versions are reviewed: even a first sync activates nothing
	syncMu  sync.Mutex  // one sync at a time: versions are decided against a stable view

	listedMu sync.Mutex
	listed   map[string]spec.Listing // prompts and resources by upstream, as last listed (not pinned)
}

// New returns a Catalog and loads its first snapshot.
func New(ctx context.Context, store Store, auditor Auditor, lister Lister, now func() time.Time, log *slog.Logger) (*Catalog, error) {
	if store == nil || auditor == nil || lister == nil || now == nil || log == nil {
		return nil, errors.New("catalog: missing dependency")
	}
	c := &Catalog{store: store, audit: auditor, lister: lister, now: now, log: log, listed: map[string]spec.Listing{}}
	return c, c.reload(ctx)
}

// HoldNewTools makes every new tool wait for review, those of an
// upstream's first sync too (where activating a tool version is a reviewed
// change, adding an upstream must not activate its tools unreviewed).
func (c *Catalog) HoldNewTools(hold bool) { c.holdNew.Store(hold) }

// Snapshot returns the current catalog view.
func (c *Catalog) Snapshot() *Snapshot { return c.snap.Load() }

func (c *Catalog) reload(ctx context.Context) error {
	ups, err := c.store.ListUpstreams(ctx)
	if err != nil {
		return err
	}
	tools, err := c.store.CatalogTools(ctx)
	if err != nil {
		return err
	}
	c.listedMu.Lock()
	listed := make(map[string]spec.Listing, len(c.listed))
	for k, v := range c.listed {
		listed[k] = v
	}
	c.listedMu.Unlock()
	c.snap.Store(newSnapshot(ups, tools, listed))
	return nil
}

// syncListed keeps the prompts, resources and resource templates an
// upstream lists, named under its namespace. A prompt is identified by its
// name, which follows the tools' rules. A resource is identified by its URI
// (a template by its URI template) and its name is a display name
// (spec.ValidDisplayName): two resources of one upstream may share it.
// Grants apply to the namespaced name, so a name another upstream already
// has, or one lying in another upstream's namespace, is refused, as is a
// URI another upstream already has. They are not versioned: their content
// is produced per request anyway.
func (c *Catalog) syncListed(ctx context.Context, snap *Snapshot, u spec.Upstream, l spec.Listing, actor string, rep *SyncReport) error {
	var keep spec.Listing
	seen := map[string]bool{}
	// admit decides one item; id identifies it within the upstream (a
	// prompt's name, a resource's URI, a template's URI template).
	admit := func(kind, name, id string, valid func(string) bool, rule string) (bool, error) {
		exposed := u.Expose(name)
		owner, shadowed := snap.claimListed(kind, exposed, u.Name)
		reason := ""
		switch {
		case !valid(name) || !valid(exposed):
			reason = "invalid name (" + rule + ")"
		case id == "":
			reason = "no URI"
		case seen[kind+" "+id]:
			reason = "listed twice"
		case owner != "":
			reason = fmt.Sprintf("%s is already a %s of upstream %s", exposed, kind, owner)
		case shadowed != "":
			reason = fmt.Sprintf("%s lies in the namespace of upstream %s", exposed, shadowed)
		case kind == "resource" && snap.uriOwner(id, u.Name) != "":
			reason = fmt.Sprintf("URI %s is already a resource of upstream %s", clip(id), snap.uriOwner(id, u.Name))
		}
		seen[kind+" "+id] = true
		if reason == "" {
			return true, nil
		}
		rep.Refused = append(rep.Refused, kind+" "+clip(name)+": "+reason)
		code, detail := "prompt-refused", map[string]any{"prompt": clip(name), "reason": reason}
		if kind != "prompt" {
			code, detail = "resource-refused", map[string]any{"resource": clip(name), "uri": clip(id), "template": kind == "resource template", "reason": reason}
		}
		return false, c.record(ctx, audit.Record{Event: EventToolRefused, Outcome: audit.Failed, Reason: code, Actor: actor,
			Target: "upstream:" + u.Name, Detail: detail}, nil)
	}
	const toolRule, displayRule = "1–128 ASCII letters, digits, _ - . /", "1–256 bytes of printable text"
	var err error
	if keep.Prompts, err = admitted(l.Prompts, func(pr *mcp.Prompt) (bool, error) {
		return admit("prompt", pr.Name, pr.Name, spec.ValidToolName, toolRule)
	}); err != nil {
		return err
	}
	if keep.Resources, err = admitted(l.Resources, func(r *mcp.Resource) (bool, error) {
		return admit("resource", r.Name, r.URI, spec.ValidDisplayName, displayRule)
	}); err != nil {
		return err
	}
	if keep.Templates, err = admitted(l.Templates, func(t *mcp.ResourceTemplate) (bool, error) {
		return admit("resource template", t.Name, t.URITemplate, spec.ValidDisplayName, displayRule)
	}); err != nil {
		return err
	}
	c.listedMu.Lock()
	c.listed[u.Name] = keep
	c.listedMu.Unlock()
	return nil
}

// admitted returns the items of list that admit accepts, in order.
func admitted[T any](list []*T, admit func(*T) (bool, error)) ([]*T, error) {
	var out []*T
	for _, v := range list {
		ok, err := admit(v)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

func (c *Catalog) record(ctx context.Context, rec audit.Record, apply func(context.Context, TxStore) error) error {
	e := audit.Entry{Record: rec}
	if apply != nil {
		e.Apply = func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			ts, err := txStore(tx)
			if err != nil {
				return err
			}
			return apply(ctx, ts)
		}
	}
	_, err := c.audit.Write(ctx, e)
	return err
}

func safeErr(err error) string {
	return clip(err.Error())
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
