package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
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
