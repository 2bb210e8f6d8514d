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
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/upstream"
)

// Audit event types of the catalog.
const (
	EventUpstreamAdd    = "upstream-add"
	EventUpstreamRemove = "upstream-remove"
	EventUpstreamList   = "upstream-list"
	EventUpstreamSync   = "upstream-sync"
	EventToolCreated    = "tool-version-created"
	EventToolPending    = "tool-version-pending"
	EventToolActivated  = "tool-version-activated"
	EventToolVanished   = "tool-vanished"
	EventToolReappeared = "tool-reappeared"
	EventToolRefused    = "tool-refused"
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

	snap   atomic.Pointer[Snapshot]
	syncMu sync.Mutex // one sync at a time: versions are decided against a stable view

	listedMu sync.Mutex
	listed   map[string]upstream.Listing // prompts and resources by upstream, as last listed (not pinned)
}

// New returns a Catalog and loads its first snapshot.
func New(ctx context.Context, store Store, auditor Auditor, lister Lister, now func() time.Time, log *slog.Logger) (*Catalog, error) {
	if store == nil || auditor == nil || lister == nil || now == nil || log == nil {
		return nil, errors.New("catalog: missing dependency")
	}
	c := &Catalog{store: store, audit: auditor, lister: lister, now: now, log: log, listed: map[string]upstream.Listing{}}
	return c, c.reload(ctx)
}

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
	listed := make(map[string]upstream.Listing, len(c.listed))
	for k, v := range c.listed {
		listed[k] = v
	}
	c.listedMu.Unlock()
	c.snap.Store(newSnapshot(ups, tools, listed))
	return nil
}

// SyncReport says what a sync found.
type SyncReport struct {
	Upstream  string   `json:"upstream"`
	Tools     int      `json:"tools"`              // tools the upstream listed
	Prompts   int      `json:"prompts"`            // prompts the upstream listed
	Resources int      `json:"resources"`          // resources and resource templates the upstream listed
	Created   []string `json:"created,omitempty"`  // new tools, pinned at version 1
	Pending   []string `json:"pending,omitempty"`  // changed definitions awaiting review
	Vanished  []string `json:"vanished,omitempty"` // no longer listed
	Refused   []string `json:"refused,omitempty"`  // "name: reason"
	Error     string   `json:"error,omitempty"`    // the upstream could not be listed
}

// Sync lists an upstream's tools and records what changed, each change
// with its own audit record. actor names who caused the sync.
func (c *Catalog) Sync(ctx context.Context, name, actor string) (SyncReport, error) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	rep := SyncReport{Upstream: name}
	snap := c.Snapshot()
	u, ok := snap.Upstream(name)
	if !ok {
		return rep, fault.New(fault.NotFound, "upstream %q does not exist", name)
	}
	listing, err := c.lister.List(ctx, u)
	tools := listing.Tools
	if err != nil {
		rep.Error = "cannot list tools: " + safeErr(err)
		if msg, refused := upstream.RefusedAddress(err); refused {
			rep.Error = msg
		}
		if msg, refused := upstream.RefusedCommand(err); refused {
			rep.Error = "cannot start the upstream: " + msg
		}
		c.log.Warn("upstream sync failed", "upstream", name, "err", err)
		c.record(ctx, audit.Record{Event: EventUpstreamSync, Outcome: audit.Failed, Reason: "upstream-unavailable", Actor: actor,
			Target: "upstream:" + name, Detail: map[string]any{"error": rep.Error}}, nil)
		return rep, nil
	}
	rep.Tools, rep.Prompts, rep.Resources = len(tools), len(listing.Prompts), len(listing.Resources)+len(listing.Templates)
	if err := c.syncListed(ctx, snap, u, listing, actor, &rep); err != nil {
		return rep, err
	}
	states, err := c.store.CatalogTools(ctx)
	if err != nil {
		return rep, err
	}
	known := map[string]ToolState{}
	for _, st := range states {
		if st.Upstream == name {
			known[st.Tool] = st
		}
	}
	listed := map[string]bool{}
	for _, t := range tools {
		if listed[t.Name] {
			rep.Refused = append(rep.Refused, clip(t.Name)+": listed twice")
			continue
		}
		listed[t.Name] = true
		if err := c.syncTool(ctx, snap, u, known[t.Name], t, actor, &rep); err != nil {
			return rep, err
		}
	}
	for tool, st := range known {
		if !listed[tool] && !st.Vanished {
			rep.Vanished = append(rep.Vanished, u.Expose(tool))
			err := c.record(ctx, audit.Record{Event: EventToolVanished, Outcome: audit.Success, Actor: actor, Target: "tool:" + u.Expose(tool),
				Detail: map[string]any{"upstream": name}}, func(ctx context.Context, tx TxStore) error {
				return tx.SetToolVanished(ctx, name, tool, c.now())
			})
			if err != nil {
				return rep, err
			}
		}
	}
	if err := c.record(ctx, audit.Record{Event: EventUpstreamSync, Outcome: audit.Success, Actor: actor, Target: "upstream:" + name,
		Detail: map[string]any{"tools": rep.Tools, "prompts": rep.Prompts, "created": len(rep.Created), "pending": len(rep.Pending),
			"vanished": len(rep.Vanished), "refused": len(rep.Refused)}}, nil); err != nil {
		return rep, err
	}
	return rep, c.reload(ctx)
}

// syncTool records one listed tool: new, unchanged, changed or refused.
func (c *Catalog) syncTool(ctx context.Context, snap *Snapshot, u upstream.Upstream, st ToolState, t *mcp.Tool, actor string, rep *SyncReport) error {
	exposed := u.Expose(t.Name)
	refuse := func(reason string) error {
		rep.Refused = append(rep.Refused, clip(t.Name)+": "+reason)
		return c.record(ctx, audit.Record{Event: EventToolRefused, Outcome: audit.Failed, Reason: "tool-refused", Actor: actor,
			Target: "upstream:" + u.Name, Detail: map[string]any{"tool": clip(t.Name), "reason": reason}}, nil)
	}
	if !upstream.ValidToolName(t.Name) || !upstream.ValidToolName(exposed) {
		return refuse("invalid tool name (1–128 ASCII letters, digits, _ - . /)")
	}
	if BuiltinNames[exposed] {
		return refuse("the name of a built-in tool")
	}
	if owner, shadowed := snap.claim(exposed, u.Name); owner != "" {
		return refuse(fmt.Sprintf("%s is already a tool of upstream %s", exposed, owner))
	} else if shadowed != "" {
		return refuse(fmt.Sprintf("%s lies in the namespace of upstream %s", exposed, shadowed))
	}
	def, digest, err := Definition(t)
	if err != nil {
		return refuse("definition cannot be encoded")
	}
	target := "tool:" + exposed
	if st.Vanished {
		if err := c.record(ctx, audit.Record{Event: EventToolReappeared, Outcome: audit.Success, Actor: actor, Target: target,
			Detail: map[string]any{"upstream": u.Name}}, func(ctx context.Context, tx TxStore) error {
			return tx.SetToolVanished(ctx, u.Name, t.Name, time.Time{})
		}); err != nil {
			return err
		}
	}
	activeVersion := 0
	for _, v := range st.Versions {
		if v.Digest == digest {
			return nil // known: active, pending or superseded
		}
		if v.Status == Active {
			activeVersion = v.Version
		}
	}
	now := c.now()
	v := Version{Upstream: u.Name, Tool: t.Name, Version: 1, Digest: digest, Definition: def, Status: Active, SeenAt: now, ActivatedAt: now, ActivatedBy: actor}
	event := EventToolCreated
	if n := len(st.Versions); n > 0 {
		v.Version, v.Status, v.ActivatedAt, v.ActivatedBy = st.Versions[n-1].Version+1, Pending, time.Time{}, ""
		event = EventToolPending
		rep.Pending = append(rep.Pending, fmt.Sprintf("%s v%d", exposed, v.Version))
	} else {
		rep.Created = append(rep.Created, exposed)
	}
	return c.record(ctx, audit.Record{Event: event, Outcome: audit.Success, Actor: actor, Target: target,
		Detail: map[string]any{"upstream": u.Name, "version": v.Version, "digest": digest, "active_version": activeVersion}},
		func(ctx context.Context, tx TxStore) error { return tx.InsertToolVersion(ctx, v) })
}

// syncListed keeps the prompts, resources and resource templates an
// upstream lists, named under its namespace with the same collision rules
// as tools (resources are named by their programmatic name; their URIs must
// not collide with another upstream's). They are not versioned: their
// content is produced per request anyway.
func (c *Catalog) syncListed(ctx context.Context, snap *Snapshot, u upstream.Upstream, l upstream.Listing, actor string, rep *SyncReport) error {
	var keep upstream.Listing
	seen := map[string]bool{}
	admit := func(kind, name, uri string) (bool, error) {
		exposed := u.Expose(name)
		owner, shadowed := snap.claimListed(kind, exposed, u.Name)
		reason := ""
		switch {
		case !upstream.ValidToolName(name) || !upstream.ValidToolName(exposed):
			reason = "invalid name (1–128 ASCII letters, digits, _ - . /)"
		case seen[kind+" "+name]:
			reason = "listed twice"
		case owner != "":
			reason = fmt.Sprintf("%s is already a %s of upstream %s", exposed, kind, owner)
		case shadowed != "":
			reason = fmt.Sprintf("%s lies in the namespace of upstream %s", exposed, shadowed)
		case uri != "" && snap.uriOwner(uri, u.Name) != "":
			reason = fmt.Sprintf("URI %s is already a resource of upstream %s", clip(uri), snap.uriOwner(uri, u.Name))
		}
		seen[kind+" "+name] = true
		if reason == "" {
			return true, nil
		}
		rep.Refused = append(rep.Refused, kind+" "+clip(name)+": "+reason)
		return false, c.record(ctx, audit.Record{Event: EventToolRefused, Outcome: audit.Failed, Reason: kind + "-refused", Actor: actor,
			Target: "upstream:" + u.Name, Detail: map[string]any{kind: clip(name), "reason": reason}}, nil)
	}
	for _, pr := range l.Prompts {
		ok, err := admit("prompt", pr.Name, "")
		if err != nil {
			return err
		}
		if ok {
			keep.Prompts = append(keep.Prompts, pr)
		}
	}
	for _, r := range l.Resources {
		ok, err := admit("resource", r.Name, r.URI)
		if err != nil {
			return err
		}
		if ok {
			keep.Resources = append(keep.Resources, r)
		}
	}
	for _, t := range l.Templates {
		ok, err := admit("resource", t.Name, "")
		if err != nil {
			return err
		}
		if ok {
			keep.Templates = append(keep.Templates, t)
		}
	}
	c.listedMu.Lock()
	c.listed[u.Name] = keep
	c.listedMu.Unlock()
	return nil
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
