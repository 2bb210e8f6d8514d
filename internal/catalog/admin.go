package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// guard checks that p holds action on resource, recording a denial.
func (c *Catalog) guard(ctx context.Context, p *authn.Principal, rec audit.Record, a authz.Action, resource string) error {
	if p.Allows(a, resource) {
		return nil
	}
	return audit.Refuse(ctx, c.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs %s:%s", a, resource))
}

// AddUpstream registers an upstream and syncs its tools. A prefix already
// used by another upstream is refused: namespaces are not shared.
func (c *Catalog) AddUpstream(ctx context.Context, p *authn.Principal, u spec.Upstream) (spec.Upstream, SyncReport, error) {
	rec := p.Record(EventUpstreamAdd, "upstream:"+u.Name)
	rec.Detail = map[string]any{"kind": string(u.Kind), "prefix": u.Prefix, "url": u.DisplayURL(), "command": u.Command, "allow_private": u.AllowPrivate, "allow_plain_http": u.AllowPlainHTTP, "call_timeout_ms": u.CallTimeout.Milliseconds(),
		"on_change": onChange(u), "header_names": keys(u.Headers), "env_names": keys(u.Env)}
	if !u.TLS.IsZero() {
		rec.Detail["tls"] = u.TLS.Summary()
	}
	if o := u.OpenAPI; o != nil {
		oa := map[string]any{"source": o.DocumentSource(), "operations": o.Operations}
		if o.Auth != nil {
			oa["auth"] = o.Auth.Summary()
		}
		rec.Detail["openapi"] = oa
	}
	if err := c.guard(ctx, p, rec, authz.ManageTools, authz.All); err != nil {
		return u, SyncReport{}, err
	}
	if err := u.Validate(); err != nil {
		return u, SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	if err := c.lister.Admit(u); err != nil {
		return u, SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	u.CreatedAt, u.CreatedBy = c.now().UTC(), p.User
	err := c.record(ctx, rec, func(ctx context.Context, tx TxStore) error {
		if u.Prefix != "" {
			ups, err := tx.ListUpstreams(ctx)
			if err != nil {
				return err
			}
			for _, o := range ups {
				if o.Prefix == u.Prefix {
					return fault.New(fault.Conflict, "prefix %q is already the namespace of upstream %s", u.Prefix, o.Name)
				}
			}
		}
		return tx.InsertUpstream(ctx, u)
	})
	if err != nil {
		return u, SyncReport{}, err
	}
	if err := c.reload(ctx); err != nil {
		return u, SyncReport{}, err
	}
	rep, err := c.Sync(ctx, u.Name, p.User)
	return u, rep, err
}

// SetDocument replaces the stored OpenAPI document of an upstream (one
// added with a document file; one with a URL is fetched at each sync) and
// syncs it: an operation whose definition changed is drift, reviewed like
// any other. A document that does not map is refused, the old one kept.
func (c *Catalog) SetDocument(ctx context.Context, p *authn.Principal, name string, doc []byte) (SyncReport, error) {
	sum := sha256.Sum256(doc)
	rec := p.Record(EventUpstreamDoc, "upstream:"+name)
	rec.Detail = map[string]any{"bytes": len(doc), "sha256": hex.EncodeToString(sum[:])}
	if err := c.guard(ctx, p, rec, authz.ManageTools, authz.All); err != nil {
		return SyncReport{}, err
	}
	u, ok := c.Snapshot().Upstream(name)
	switch {
	case !ok:
		return SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.NotFound, "upstream %q does not exist", name))
	case u.Kind != spec.HTTPAPI || u.OpenAPI == nil:
		return SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "upstream %s is not an HTTP API with an OpenAPI document", name))
	case u.OpenAPI.Source != "":
		return SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "upstream %s fetches its document from its URL at each sync: run 'ostiary upstreams sync %s'", name, name))
	}
	o := *u.OpenAPI
	o.Document = string(doc)
	u.OpenAPI = &o
	if err := u.Validate(); err != nil {
		return SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	if err := c.lister.Admit(u); err != nil {
		return SyncReport{}, audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	if err := c.record(ctx, rec, func(ctx context.Context, tx TxStore) error { return tx.SetUpstreamOpenAPI(ctx, name, o) }); err != nil {
		return SyncReport{}, err
	}
	if err := c.reload(ctx); err != nil {
		return SyncReport{}, err
	}
	return c.Sync(ctx, name, p.User)
}

// RemoveUpstream removes an upstream and its tools from the catalog.
func (c *Catalog) RemoveUpstream(ctx context.Context, p *authn.Principal, name string) error {
	rec := p.Record(EventUpstreamRemove, "upstream:"+name)
	if err := c.guard(ctx, p, rec, authz.ManageTools, authz.All); err != nil {
		return err
	}
	if err := c.record(ctx, rec, func(ctx context.Context, tx TxStore) error { return tx.DeleteUpstream(ctx, name) }); err != nil {
		return err
	}
	err := c.reload(ctx)
	if f, ok := c.lister.(interface{ Forget(string) }); ok { // nothing stays open to it
		f.Forget(name)
	}
	return err
}

// ListUpstreams lists the configured upstreams (never header or env values).
func (c *Catalog) ListUpstreams(ctx context.Context, p *authn.Principal) ([]spec.Upstream, error) {
	rec := p.Record(EventUpstreamList, "")
	if err := c.guard(ctx, p, rec, authz.ManageTools, authz.All); err != nil {
		return nil, err
	}
	if _, err := c.audit.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, err
	}
	return c.Snapshot().Upstreams(), nil
}

// SyncUpstream re-lists one upstream's tools on request.
func (c *Catalog) SyncUpstream(ctx context.Context, p *authn.Principal, name string) (SyncReport, error) {
	if err := c.guard(ctx, p, p.Record(EventUpstreamSync, "upstream:"+name), authz.ManageTools, authz.All); err != nil {
		return SyncReport{}, err
	}
	return c.Sync(ctx, name, p.User)
}

// ListTools returns the catalog entries: all of them (with review state)
// for a holder of manage-tools:*, otherwise those the caller may discover.
// With as set, those the named user's roles let them discover (manage-tools:*
// required).
func (c *Catalog) ListTools(ctx context.Context, p *authn.Principal, as string) ([]*Entry, error) {
	rec := p.Record(EventCatalogList, "")
	allow := func(name string) bool { return p.Allows(authz.Discover, name) }
	if p.Allows(authz.ManageTools, authz.All) {
		allow = func(string) bool { return true }
	}
	if as != "" {
		rec.Target = "user:" + as
		if err := c.guard(ctx, p, rec, authz.ManageTools, authz.All); err != nil {
			return nil, err
		}
		gs, err := c.store.UserGrants(ctx, as)
		if err != nil {
			return nil, audit.Refuse(ctx, c.audit, rec, err)
		}
		allow = func(name string) bool { return gs.Allows(authz.Discover, name) }
	}
	var out []*Entry
	for _, e := range c.Snapshot().Entries() {
		if allow(e.Name) {
			out = append(out, e)
		}
	}
	if p.Allows(authz.ManageTools, authz.All) && as == "" { // tools held for review, for whoever reviews them
		out = append(out, c.Snapshot().Held()...)
	}
	if _, err := c.audit.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, err
	}
	return out, nil
}

// Versions returns every version of an exposed tool.
func (c *Catalog) Versions(ctx context.Context, p *authn.Principal, name string) ([]Version, error) {
	rec := p.Record(EventToolVersions, "tool:"+name)
	if err := c.guard(ctx, p, rec, authz.ManageTools, name); err != nil {
		return nil, err
	}
	st, err := c.toolState(ctx, name)
	if err != nil {
		return nil, audit.Refuse(ctx, c.audit, rec, err)
	}
	if _, err := c.audit.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, err
	}
	return st.Versions, nil
}

// Activate pins version of an exposed tool (review of a pending version, or
// rollback to an earlier one). Either acknowledges the definition the
// upstream presents now: a tool whose calls were refused because it changed
// is callable again. Re-activating the active version does only that, and
// is refused as a no-op when nothing changed.
func (c *Catalog) Activate(ctx context.Context, p *authn.Principal, name string, version int) error {
	rec := p.Record(EventToolActivated, "tool:"+name)
	rec.Detail = map[string]any{"version": version}
	if err := c.guard(ctx, p, rec, authz.ManageTools, name); err != nil {
		return err
	}
	st, err := c.toolState(ctx, name)
	if err != nil {
		return audit.Refuse(ctx, c.audit, rec, err)
	}
	if !st.ChangedAt.IsZero() {
		rec.Detail["acknowledged_digest"] = st.Presented
	}
	err = c.record(ctx, rec, func(ctx context.Context, tx TxStore) error {
		for _, v := range st.Versions {
			if v.Version == version {
				if v.Status == Active && st.ChangedAt.IsZero() {
					return fault.New(fault.Conflict, "version %d of %s is already active", version, name)
				}
				return tx.ActivateToolVersion(ctx, st.Upstream, st.Tool, version, c.now(), p.User)
			}
		}
		return fault.New(fault.NotFound, "tool %s has no version %d", name, version)
	})
	if err != nil {
		return err
	}
	return c.reload(ctx)
}

// SetTimeout sets (or, with 0, clears) the call timeout of an exposed tool.
// The server's bound still caps it.
func (c *Catalog) SetTimeout(ctx context.Context, p *authn.Principal, name string, d time.Duration) error {
	rec := p.Record(EventToolTimeout, "tool:"+name)
	rec.Detail = map[string]any{"timeout_ms": d.Milliseconds()}
	if err := c.guard(ctx, p, rec, authz.ManageTools, name); err != nil {
		return err
	}
	if err := spec.ValidTimeout(d); err != nil {
		return audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "%s", err))
	}
	e, ok := c.Snapshot().byName[name]
	if !ok {
		return audit.Refuse(ctx, c.audit, rec, fault.New(fault.NotFound, "tool %q is not in the catalog", name))
	}
	if err := c.record(ctx, rec, func(ctx context.Context, tx TxStore) error {
		return tx.SetToolTimeout(ctx, e.Upstream, e.UpstreamTool, d)
	}); err != nil {
		return err
	}
	return c.reload(ctx)
}

// SetLabels sets a tool's governance labels (nil: clears them, so the
// upstream's hints stand in again). The record keeps the labels before and
// after.
func (c *Catalog) SetLabels(ctx context.Context, p *authn.Principal, name string, l *policy.Labels) error {
	rec := p.Record(EventToolLabels, "tool:"+clip(name)) // a name from the request: bounded on record
	rec.Detail = map[string]any{"labels": labelsDetail(l)}
	if err := c.guard(ctx, p, rec, authz.ManageTools, name); err != nil {
		return err
	}
	if l != nil {
		if err := l.Validate(); err != nil {
			return audit.Refuse(ctx, c.audit, rec, fault.New(fault.Invalid, "%s", err))
		}
		rec.Detail["labels"] = labelsDetail(l)
	}
	e, ok := c.Snapshot().byName[name]
	if !ok {
		return audit.Refuse(ctx, c.audit, rec, fault.New(fault.NotFound, "tool %q is not in the catalog", name))
	}
	rec.Detail["previous"] = labelsDetail(e.Labels)
	if err := c.record(ctx, rec, func(ctx context.Context, tx TxStore) error {
		return tx.SetToolLabels(ctx, e.Upstream, e.UpstreamTool, l, c.now().UTC(), p.User)
	}); err != nil {
		return err
	}
	return c.reload(ctx)
}

// labelsDetail is labels as an audit detail value (nil: "none").
func labelsDetail(l *policy.Labels) any {
	if l == nil {
		return "none"
	}
	return map[string]any{"data_classes": l.DataClasses, "risk": l.Risk, "irreversible": l.Irreversible, "egress": l.Egress,
		"owner": l.Owner, "require_approval": l.RequireApproval, "approvers": l.Approvers,
		"allow_elicitation": l.AllowElicitation, "allow_sampling": l.AllowSampling}
}

// toolState finds an exposed name's stored state (held tools included).
func (c *Catalog) toolState(ctx context.Context, name string) (ToolState, error) {
	e, ok := c.Snapshot().entry(name)
	if !ok {
		return ToolState{}, fault.New(fault.NotFound, "tool %q is not in the catalog", name)
	}
	states, err := c.store.CatalogTools(ctx)
	if err != nil {
		return ToolState{}, err
	}
	for _, st := range states {
		if st.Upstream == e.Upstream && st.Tool == e.UpstreamTool {
			return st, nil
		}
	}
	return ToolState{}, fault.New(fault.NotFound, "tool %q is not in the catalog", name)
}

// onChange is u's on_change, the default spelled out.
func onChange(u spec.Upstream) string {
	if u.OnChange == "" {
		return spec.OnChangeRefuse
	}
	return u.OnChange
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
