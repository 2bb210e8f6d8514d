package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// SyncReport says what a sync found.
type SyncReport struct {
	Upstream  string `json:"upstream"`
	Tools     int    `json:"tools"`     // tools the upstream listed
	Prompts   int    `json:"prompts"`   // prompts the upstream listed
	Resources int    `json:"resources"` // resources and resource templates the upstream listed
	// FirstSync: the upstream's first successful sync, which activates the
	// tools it finds (those not flagged), unless tool versions are
	// reviewed (HoldNewTools).
	FirstSync bool     `json:"first_sync,omitempty"`
	Created   []string `json:"created,omitempty"`     // new tools activated at version 1 (first sync only)
	New       []string `json:"new_pending,omitempty"` // new tools held for review: neither listed nor callable until activated
	Pending   []string `json:"pending,omitempty"`     // changed definitions awaiting review, "name vN"
	Changed   []string `json:"changed,omitempty"`     // tools now presenting an unreviewed definition: calls refused (or kept pinned)
	Flagged   []string `json:"flagged,omitempty"`     // "name vN: reason, reason" (Scan)
	Vanished  []string `json:"vanished,omitempty"`    // no longer listed
	Refused   []string `json:"refused,omitempty"`     // "name: reason"
	Error     string   `json:"error,omitempty"`       // the upstream could not be listed
}

// syncRun is one sync under way.
type syncRun struct {
	snap  *Snapshot
	u     spec.Upstream
	actor string
	rep   *SyncReport
	// taken maps the skeletons of names already exposed (and of the
	// built-in tools) to those names; fresh those of the new names listed
	// now, to the names listed with each.
	taken, fresh map[string][]string
	presented    map[string]string // tool: digest it presented now
	refused      map[string]bool   // tools listed but refused now
}

func newSyncRun(snap *Snapshot, u spec.Upstream, actor string, rep *SyncReport, tools []*mcp.Tool) *syncRun {
	run := &syncRun{snap: snap, u: u, actor: actor, rep: rep, taken: map[string][]string{}, fresh: map[string][]string{}, presented: map[string]string{}, refused: map[string]bool{}}
	maps.Copy(run.taken, snap.skeletons())
	for b := range BuiltinNames {
		run.taken[Skeleton(b)] = append(run.taken[Skeleton(b)], b)
	}
	for _, t := range tools {
		exposed := u.Expose(t.Name)
		if sk := Skeleton(exposed); run.taken[sk] == nil {
			run.fresh[sk] = append(run.fresh[sk], exposed)
		}
	}
	return run
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
		rep.Error = "cannot list tools: " + safeErr(errors.New(spec.ScrubURL(u, err.Error())))
		if msg, refused := spec.RefusedAddress(err); refused {
			rep.Error = msg
		}
		if msg, refused := spec.RefusedCommand(err); refused {
			rep.Error = "cannot start the upstream: " + msg
		}
		c.log.WarnContext(ctx, "upstream sync failed", "upstream", name, "err", spec.ScrubURL(u, err.Error())) // ctx: the request id of an admin sync
		c.record(ctx, audit.Record{Event: EventUpstreamSync, Outcome: audit.Failed, Reason: "upstream-unavailable", Actor: actor,
			Target: "upstream:" + name, Detail: map[string]any{"error": rep.Error}}, nil)
		return rep, nil
	}
	rep.Tools, rep.Prompts, rep.Resources = len(tools), len(listing.Prompts), len(listing.Resources)+len(listing.Templates)
	rep.FirstSync = u.SyncedAt.IsZero()
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
	run := newSyncRun(snap, u, actor, &rep, tools)
	listed := map[string]bool{}
	for _, t := range tools {
		if listed[t.Name] {
			rep.Refused = append(rep.Refused, clip(t.Name)+": listed twice")
			continue
		}
		listed[t.Name] = true
		if err := c.syncTool(ctx, run, known[t.Name], t); err != nil {
			return rep, err
		}
	}
	if err := c.finishSync(ctx, run, known, listed); err != nil {
		return rep, err
	}
	return rep, c.reload(ctx)
}

// finishSync records the tools no longer listed as vanished, then the sync
// itself, with what each tool presented and the upstream's first sync.
func (c *Catalog) finishSync(ctx context.Context, run *syncRun, known map[string]ToolState, listed map[string]bool) error {
	name, rep := run.u.Name, run.rep
	for tool, st := range known {
		if (!listed[tool] || run.refused[tool]) && !st.Vanished { // a known tool now refused is no longer callable either
			rep.Vanished = append(rep.Vanished, run.u.Expose(tool))
			err := c.record(ctx, audit.Record{Event: EventToolVanished, Outcome: audit.Success, Actor: run.actor, Target: "tool:" + run.u.Expose(tool),
				Detail: map[string]any{"upstream": name}}, func(ctx context.Context, tx TxStore) error {
				return tx.SetToolVanished(ctx, name, tool, c.now())
			})
			if err != nil {
				return err
			}
		}
	}
	return c.record(ctx, audit.Record{Event: EventUpstreamSync, Outcome: audit.Success, Actor: run.actor, Target: "upstream:" + name,
		Detail: map[string]any{"tools": rep.Tools, "prompts": rep.Prompts, "first_sync": rep.FirstSync, "created": len(rep.Created),
			"new_pending": len(rep.New), "pending": len(rep.Pending), "changed": len(rep.Changed), "flagged": len(rep.Flagged),
			"vanished": len(rep.Vanished), "refused": len(rep.Refused)}}, func(ctx context.Context, tx TxStore) error {
		for tool, digest := range run.presented {
			if err := tx.SetToolPresented(ctx, name, tool, digest, time.Time{}); err != nil {
				return err
			}
		}
		return tx.MarkUpstreamSynced(ctx, name, c.now())
	})
}

// syncTool records one listed tool: new, unchanged, changed or refused.
func (c *Catalog) syncTool(ctx context.Context, run *syncRun, st ToolState, t *mcp.Tool) error {
	if reason := run.refusal(t.Name); reason != "" {
		run.refused[t.Name] = true
		run.rep.Refused = append(run.rep.Refused, clip(t.Name)+": "+reason)
		return c.record(ctx, audit.Record{Event: EventToolRefused, Outcome: audit.Failed, Reason: "tool-refused", Actor: run.actor,
			Target: "upstream:" + run.u.Name, Detail: map[string]any{"tool": clip(t.Name), "reason": reason}}, nil)
	}
	def, digest, err := Definition(t)
	if err != nil {
		run.refused[t.Name] = true
		run.rep.Refused = append(run.rep.Refused, clip(t.Name)+": definition cannot be encoded")
		return c.record(ctx, audit.Record{Event: EventToolRefused, Outcome: audit.Failed, Reason: "tool-refused", Actor: run.actor,
			Target: "upstream:" + run.u.Name, Detail: map[string]any{"tool": clip(t.Name), "reason": "definition cannot be encoded"}}, nil)
	}
	exposed := run.u.Expose(t.Name)
	if st.Vanished {
		if err := c.record(ctx, audit.Record{Event: EventToolReappeared, Outcome: audit.Success, Actor: run.actor, Target: "tool:" + exposed,
			Detail: map[string]any{"upstream": run.u.Name}}, func(ctx context.Context, tx TxStore) error {
			return tx.SetToolVanished(ctx, run.u.Name, t.Name, time.Time{})
		}); err != nil {
			return err
		}
	}
	var active *Version
	presented := 0 // the version of what is presented
	for i, v := range st.Versions {
		if v.Status == Active {
			active = &st.Versions[i]
		}
		if v.Digest == digest {
			presented = v.Version
		}
	}
	if presented == 0 {
		if presented, err = c.newVersion(ctx, run, st, t.Name, def, digest); err != nil {
			return err
		}
	}
	run.presented[t.Name] = digest
	if active == nil || digest == active.Digest || digest == st.Reviewed || !st.ChangedAt.IsZero() {
		return nil
	}
	// Seen to differ from the pinned definition: calls stop until an
	// activation acknowledges it (or run pinned, if the upstream says so).
	run.rep.Changed = append(run.rep.Changed, exposed)
	return c.record(ctx, audit.Record{Event: EventToolChanged, Outcome: audit.Success, Actor: run.actor, Target: "tool:" + exposed,
		Detail: map[string]any{"upstream": run.u.Name, "active_version": active.Version, "presented_version": presented, "digest": digest, "on_change": onChange(run.u)}},
		func(ctx context.Context, tx TxStore) error {
			return tx.SetToolPresented(ctx, run.u.Name, t.Name, digest, c.now())
		})
}

// newVersion stores a definition not seen before: the next pending version
// of a known tool; a new tool's version 1, active on the upstream's first
// sync unless its flags hold it, else pending. It returns the version
// number.
func (c *Catalog) newVersion(ctx context.Context, run *syncRun, st ToolState, tool string, def []byte, digest string) (int, error) {
	exposed, now := run.u.Expose(tool), c.now()
	v := Version{Upstream: run.u.Name, Tool: tool, Version: 1, Digest: digest, Definition: def, Status: Pending, SeenAt: now, Flags: Scan(def)}
	event, detail := EventToolPending, map[string]any{"upstream": run.u.Name, "digest": digest}
	switch {
	case len(st.Versions) > 0:
		v.Version = st.Versions[len(st.Versions)-1].Version + 1
		run.rep.Pending = append(run.rep.Pending, fmt.Sprintf("%s v%d", exposed, v.Version))
	case run.rep.FirstSync && !Holds(v.Flags) && !c.holdNew.Load():
		v.Status, v.ActivatedAt, v.ActivatedBy = Active, now, run.actor
		event = EventToolCreated
		run.rep.Created = append(run.rep.Created, exposed)
	default:
		detail["new"] = true
		run.rep.New = append(run.rep.New, exposed)
	}
	detail["version"] = v.Version
	if len(v.Flags) > 0 {
		detail["flags"] = v.Flags
		run.rep.Flagged = append(run.rep.Flagged, fmt.Sprintf("%s v%d: %s", exposed, v.Version, strings.Join(v.Flags, ", ")))
	}
	return v.Version, c.record(ctx, audit.Record{Event: event, Outcome: audit.Success, Actor: run.actor, Target: "tool:" + exposed, Detail: detail},
		func(ctx context.Context, tx TxStore) error {
			if err := tx.InsertToolVersion(ctx, v); err != nil {
				return err
			}
			return tx.SetToolPresented(ctx, run.u.Name, tool, digest, time.Time{})
		})
}

// refusal says why a listed tool name is not ingested ("" if it is): not
// a valid name, a built-in's, another upstream's name or namespace, or a
// name that looks like another exposed tool's (Skeleton) — one already in
// the catalog, or another new one listed now (both are refused then: which
// was meant cannot be told).
func (run *syncRun) refusal(name string) string {
	exposed := run.u.Expose(name)
	if !spec.ValidToolName(name) || !spec.ValidToolName(exposed) {
		return "invalid tool name (1–128 ASCII letters, digits, _ - . /)"
	}
	if BuiltinNames[exposed] {
		return "the name of a built-in tool"
	}
	if owner, shadowed := run.snap.claim(exposed, run.u.Name); owner != "" {
		return fmt.Sprintf("%s is already a tool of upstream %s", exposed, owner)
	} else if shadowed != "" {
		return fmt.Sprintf("%s lies in the namespace of upstream %s", exposed, shadowed)
	}
	sk := Skeleton(exposed)
	for _, other := range run.taken[sk] {
		if other != exposed {
			return fmt.Sprintf("%s looks like %s (same name after case folding and confusable mapping)", exposed, other)
		}
	}
	for _, other := range run.fresh[sk] {
		if other != exposed {
			return fmt.Sprintf("%s looks like %s, listed beside it (same name after case folding and confusable mapping)", exposed, other)
		}
	}
	return ""
}
