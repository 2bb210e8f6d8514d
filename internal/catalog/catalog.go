// Package catalog is the governed list of tools: which upstream offers each
// one, under which name, and which version of its definition is pinned. An
// upstream that changes a tool's description or schema does not change what
// clients see: the new definition waits as a pending version until an admin
// activates it, and calls of the tool are refused meanwhile (rug-pull
// protection). See DESIGN.md.
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/strictjson"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Status of a tool version.
type Status string

const (
	Active     Status = "active"     // the pinned contract
	Pending    Status = "pending"    // seen upstream, awaiting review
	Superseded Status = "superseded" // was active once
)

// Version is one definition of one upstream tool.
type Version struct {
	Upstream    string          `json:"upstream"`
	Tool        string          `json:"tool"` // the upstream's own name
	Version     int             `json:"version"`
	Digest      string          `json:"digest"`
	Definition  json.RawMessage `json:"definition"`
	Status      Status          `json:"status"`
	SeenAt      time.Time       `json:"seen_at"`
	ActivatedAt time.Time       `json:"activated_at,omitzero"`
	ActivatedBy string          `json:"activated_by,omitempty"`
	// Flags are the reasons Scan found instruction-like content in the
	// definition, for the reviewer (empty: none).
	Flags []string `json:"flags,omitempty"`
}

// ToolState is everything stored about one upstream tool.
type ToolState struct {
	Upstream    string
	Tool        string
	Vanished    bool
	CallTimeout time.Duration  // 0: not set
	Labels      *policy.Labels // nil: not labelled
	LabelledAt  time.Time
	LabelledBy  string
	// Presented is the digest of the definition the upstream presented at
	// the last sync; ChangedAt (zero: not changed) when it was seen to
	// differ from the pinned one and from Reviewed, the one an activation
	// last acknowledged. While ChangedAt is set, calls are refused.
	Presented string
	Reviewed  string
	ChangedAt time.Time
	Versions  []Version // ascending
}

// Store is the read side.
type Store interface {
	ListUpstreams(ctx context.Context) ([]spec.Upstream, error)
	UpstreamByName(ctx context.Context, name string) (spec.Upstream, error)
	CatalogTools(ctx context.Context) ([]ToolState, error)
	// UserGrants returns the union of a user's role grants.
	UserGrants(ctx context.Context, user string) (authz.Grants, error)
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	InsertUpstream(ctx context.Context, u spec.Upstream) error
	DeleteUpstream(ctx context.Context, name string) error
	InsertToolVersion(ctx context.Context, v Version) error
	SetToolVanished(ctx context.Context, upstreamName, tool string, at time.Time) error // zero: reappeared
	// ActivateToolVersion pins version, and acknowledges the definition the
	// upstream presents now: it clears ChangedAt and sets Reviewed.
	ActivateToolVersion(ctx context.Context, upstreamName, tool string, version int, at time.Time, by string) error
	// SetToolPresented records the digest a sync saw and, if changed is not
	// zero, marks the tool changed (kept if already marked).
	SetToolPresented(ctx context.Context, upstreamName, tool, digest string, changed time.Time) error
	// SetUpstreamOpenAPI replaces an OpenAPI upstream's document and options.
	SetUpstreamOpenAPI(ctx context.Context, name string, o spec.OpenAPI) error
	// MarkUpstreamSynced records an upstream's first successful sync.
	MarkUpstreamSynced(ctx context.Context, name string, at time.Time) error
	SetToolTimeout(ctx context.Context, upstreamName, tool string, d time.Duration) error // 0 clears it
	// SetToolLabels sets (nil: clears) a tool's governance labels.
	SetToolLabels(ctx context.Context, upstreamName, tool string, l *policy.Labels, at time.Time, by string) error
}

// Auditor appends records (audit.Writer).
type Auditor = audit.Appender

// Lister fetches what an upstream currently offers, and says whether this
// server may reach it at all (upstream.Pool: a stdio upstream's program
// must be on the operator's allow-list).
type Lister interface {
	List(ctx context.Context, u spec.Upstream) (spec.Listing, error)
	Admit(u spec.Upstream) error
}

// Definition returns the canonical definition of t (what is versioned and
// pinned: name, title, description, input and output schema, annotations)
// and its SHA-256 digest.
func Definition(t *mcp.Tool) (json.RawMessage, string, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, "", err
	}
	tree, err := strictjson.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	all, _ := tree.(map[string]any)
	def := map[string]any{}
	for _, k := range []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"} {
		if v, ok := all[k]; ok {
			def[k] = v
		}
	}
	// An OpenAPI operation's binding (method, path, where each argument
	// goes, the operation's digest) is part of its contract; no other
	// _meta is pinned.
	if meta, ok := all["_meta"].(map[string]any); ok {
		if b, ok := meta[spec.BindingMetaKey]; ok {
			def["_meta"] = map[string]any{spec.BindingMetaKey: b}
		}
	}
	b, err := jcs.Append(nil, def)
	if err != nil {
		return nil, "", fmt.Errorf("tool %q: definition not encodable: %w", t.Name, err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// BuiltinNames are the names of Ostiary's own tools (approval_status is
// reserved for approvals); no upstream may use them.
var BuiltinNames = map[string]bool{"discover_tools": true, "approval_status": true}

func txStore(tx audit.Tx) (TxStore, error) {
	ts, ok := tx.(TxStore)
	if !ok {
		return nil, fmt.Errorf("catalog: store transaction %T lacks catalog operations", tx)
	}
	return ts, nil
}
