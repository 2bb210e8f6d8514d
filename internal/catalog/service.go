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

	promptsMu sync.Mutex
	prompts   map[string][]*mcp.Prompt // by upstream, as last listed (not pinned)
}

// New returns a Catalog and loads its first snapshot.
func New(ctx context.Context, store Store, auditor Auditor, lister Lister, now func() time.Time, log *slog.Logger) (*Catalog, error) {
	if store == nil || auditor == nil || lister == nil || now == nil || log == nil {
		return nil, errors.New("catalog: missing dependency")
	}
	c := &Catalog{store: store, audit: auditor, lister: lister, now: now, log: log, prompts: map[string][]*mcp.Prompt{}}
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
	c.promptsMu.Lock()
	prompts := make(map[string][]*mcp.Prompt, len(c.prompts))
	for k, v := range c.prompts {
		prompts[k] = v
	}
	c.promptsMu.Unlock()
	c.snap.Store(newSnapshot(ups, tools, prompts))
	return nil
}

// SyncReport says what a sync found.
type SyncReport struct {
	Upstream string   `json:"upstream"`
	Tools    int      `json:"tools"`              // tools the upstream listed
	Prompts  int      `json:"prompts"`            // prompts the upstream listed
	Created  []string `json:"created,omitempty"`  // new tools, pinned at version 1
	Pending  []string `json:"pending,omitempty"`  // changed definitions awaiting review
	Vanished []string `json:"vanished,omitempty"` // no longer listed
	Refused  []string `json:"refused,omitempty"`  // "name: reason"
	Error    string   `json:"error,omitempty"`    // the upstream could not be listed
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
		c.log.Warn("upstream sync failed", "upstream", name, "err", err)
		c.record(ctx, audit.Record{Event: EventUpstreamSync, Outcome: audit.Failed, Reason: "upstream-unavailable", Actor: actor,
			Target: "upstream:" + name, Detail: map[string]any{"error": rep.Error}}, nil)
		return rep, nil
	}
	rep.Tools, rep.Prompts = len(tools), len(listing.Prompts)
	if err := c.syncPrompts(ctx, snap, u, listing.Prompts, actor, &rep); err != nil {
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

// syncPrompts keeps the prompts an upstream lists, under its namespace and
// the same collision rules as tools. Prompts are not versioned: their
// content is produced per request anyway.
func (c *Catalog) syncPrompts(ctx context.Context, snap *Snapshot, u upstream.Upstream, prompts []*mcp.Prompt, actor string, rep *SyncReport) error {
	var keep []*mcp.Prompt
	seen := map[string]bool{}
	for _, pr := range prompts {
		exposed := u.Expose(pr.Name)
		reason := ""
		owner, shadowed := snap.claimPrompt(exposed, u.Name)
		switch {
		case !upstream.ValidToolName(pr.Name) || !upstream.ValidToolName(exposed):
			reason = "invalid prompt name (1–128 ASCII letters, digits, _ - . /)"
		case seen[pr.Name]:
			reason = "listed twice"
		case owner != "":
			reason = fmt.Sprintf("%s is already a prompt of upstream %s", exposed, owner)
		case shadowed != "":
			reason = fmt.Sprintf("%s lies in the namespace of upstream %s", exposed, shadowed)
		}
		seen[pr.Name] = true
		if reason == "" {
			keep = append(keep, pr)
			continue
		}
		rep.Refused = append(rep.Refused, "prompt "+clip(pr.Name)+": "+reason)
		if err := c.record(ctx, audit.Record{Event: EventToolRefused, Outcome: audit.Failed, Reason: "prompt-refused", Actor: actor,
			Target: "upstream:" + u.Name, Detail: map[string]any{"prompt": clip(pr.Name), "reason": reason}}, nil); err != nil {
			return err
		}
	}
	c.promptsMu.Lock()
	c.prompts[u.Name] = keep
	c.promptsMu.Unlock()
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
