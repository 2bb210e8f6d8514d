package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/policy"
)

// The functions here serve reviewed changes (internal/change): the state a
// proposal is based on, and the change applied inside the transaction of
// the record that approves it, only if that state is still current.

// State returns the stored state of an exposed tool (held tools included).
func (c *Catalog) State(ctx context.Context, name string) (ToolState, error) {
	return c.toolState(ctx, name)
}

// Reload rebuilds the snapshot from the store (after a change committed).
func (c *Catalog) Reload(ctx context.Context) error { return c.reload(ctx) }

// VersionBase identifies what an activation is decided against: the
// version pinned now and the definition the upstream presents. A new
// pending version, another activation or a drift changes it.
func VersionBase(st ToolState) string {
	active := 0
	for _, v := range st.Versions {
		if v.Status == Active {
			active = v.Version
		}
	}
	return fmt.Sprintf("v%d/%s", active, st.Presented)
}

// LabelsBase identifies a tool's labels: the SHA-256 of their canonical
// form, or "none".
func LabelsBase(l *policy.Labels) string {
	if l == nil {
		return "none"
	}
	b, err := jcs.Append(nil, labelsDetail(l))
	if err != nil {
		return "unencodable"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// stateTx reads the tool's state inside tx.
func (c *Catalog) stateTx(ctx context.Context, ts TxStore, name string) (ToolState, error) {
	e, ok := c.Snapshot().entry(name)
	if !ok {
		return ToolState{}, fault.New(fault.NotFound, "tool %q is not in the catalog", name)
	}
	states, err := ts.CatalogTools(ctx)
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

// ActivateTx pins version of tool name inside tx if its state is still
// base (VersionBase), else a *StaleError. Call Reload after the commit.
func (c *Catalog) ActivateTx(ctx context.Context, tx audit.Tx, r *audit.Record, name string, version int, base, by string) error {
	ts, err := txStore(tx)
	if err != nil {
		return err
	}
	st, err := c.stateTx(ctx, ts, name)
	if err != nil {
		return err
	}
	if now := VersionBase(st); now != base {
		return policy.Stale(base, now)
	}
	for _, v := range st.Versions {
		if v.Version == version {
			if r.Detail == nil {
				r.Detail = map[string]any{}
			}
			r.Detail["version"], r.Detail["digest"] = version, v.Digest
			if !st.ChangedAt.IsZero() {
				r.Detail["acknowledged_digest"] = st.Presented
			}
			return ts.ActivateToolVersion(ctx, st.Upstream, st.Tool, version, c.now(), by)
		}
	}
	return fault.New(fault.NotFound, "tool %s has no version %d", name, version)
}

// SetLabelsTx sets tool name's labels inside tx if they are still base
// (LabelsBase), else a *StaleError. Call Reload after the commit.
func (c *Catalog) SetLabelsTx(ctx context.Context, tx audit.Tx, r *audit.Record, name string, l *policy.Labels, base, by string) error {
	ts, err := txStore(tx)
	if err != nil {
		return err
	}
	st, err := c.stateTx(ctx, ts, name)
	if err != nil {
		return err
	}
	if now := LabelsBase(st.Labels); now != base {
		return policy.Stale(base, now)
	}
	if r.Detail == nil {
		r.Detail = map[string]any{}
	}
	r.Detail["labels"], r.Detail["previous"] = labelsDetail(l), labelsDetail(st.Labels)
	return ts.SetToolLabels(ctx, st.Upstream, st.Tool, l, c.now().UTC(), by)
}
