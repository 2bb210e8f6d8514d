package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

func upstreams(t *testing.T, s Store) {
	t.Helper()
	mustWrite(t, s, func(tx Tx) error {
		for _, u := range []spec.Upstream{
			{Name: "fin", Prefix: "fin", Kind: spec.HTTP, URL: "https://fin.example/mcp", Headers: map[string]string{"Authorization": "Bearer ${secret:fin}"},
				AllowPrivate: true, TLS: spec.TLS{CA: "-----BEGIN CERTIFICATE-----\n…", ClientKeySecret: "fin-key"}, CallTimeout: 1500 * time.Millisecond,
				OnChange: spec.OnChangeKeepPinned, CreatedAt: t0, CreatedBy: "root"},
			{Name: "local", Kind: spec.Stdio, Command: []string{"/usr/bin/tool", "--serve"}, Env: map[string]string{"TOKEN": "${secret:t}"}, CreatedAt: t0, CreatedBy: "root"},
		} {
			if err := tx.InsertUpstream(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// An upstream reads back as registered (headers, environment and TLS
// options included); on_change defaults to refuse; names are unique.
func testUpstreams(t *testing.T, s Store) {
	upstreams(t, s)
	u, err := s.UpstreamByName(ctx, "fin")
	if err != nil || u.Prefix != "fin" || u.Kind != spec.HTTP || u.URL != "https://fin.example/mcp" || u.Headers["Authorization"] != "Bearer ${secret:fin}" ||
		!u.AllowPrivate || u.AllowPlainHTTP || u.TLS.CA == "" || u.TLS.ClientKeySecret != "fin-key" || u.CallTimeout != 1500*time.Millisecond ||
		u.OnChange != spec.OnChangeKeepPinned || !u.CreatedAt.Equal(t0) || u.CreatedBy != "root" || !u.SyncedAt.IsZero() {
		t.Errorf("fin read back as %+v, %v", u, err)
	}
	u, err = s.UpstreamByName(ctx, "local")
	if err != nil || u.Kind != spec.Stdio || !slices.Equal(u.Command, []string{"/usr/bin/tool", "--serve"}) || u.Env["TOKEN"] != "${secret:t}" ||
		u.OnChange != spec.OnChangeRefuse || u.Prefix != "" {
		t.Errorf("local read back as %+v, %v", u, err)
	}
	_, err = s.UpstreamByName(ctx, "nope")
	wantKind(t, err, fault.NotFound, "an unknown upstream")
	ups, err := s.ListUpstreams(ctx)
	if err != nil || len(ups) != 2 || ups[0].Name != "fin" || ups[1].Name != "local" {
		t.Errorf("upstreams %+v, %v", ups, err)
	}
	err = write(s, func(tx Tx) error {
		return tx.InsertUpstream(ctx, spec.Upstream{Name: "fin", Kind: spec.HTTP, URL: "https://other.example", CreatedAt: t0})
	})
	wantKind(t, err, fault.Conflict, "a second upstream fin")
	mustWrite(t, s, func(tx Tx) error { return tx.MarkUpstreamSynced(ctx, "fin", t0.Add(time.Minute)) })
	mustWrite(t, s, func(tx Tx) error { return tx.MarkUpstreamSynced(ctx, "fin", t0.Add(time.Hour)) })
	if u, _ := s.UpstreamByName(ctx, "fin"); !u.SyncedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("first sync %v, want the first one marked", u.SyncedAt)
	}
}

// version returns version n of tool on upstream fin.
func version(tool string, n int, status catalog.Status) catalog.Version {
	def := json.RawMessage(fmt.Sprintf(`{"description":"v%d","name":%q}`, n, tool))
	return catalog.Version{Upstream: "fin", Tool: tool, Version: n, Digest: fmt.Sprintf("digest-%s-%d", tool, n), Definition: def, Status: status,
		SeenAt: t0.Add(time.Duration(n) * time.Minute), Flags: []string{}}
}

func toolState(t *testing.T, s Store, tool string) catalog.ToolState {
	t.Helper()
	sts, err := s.CatalogTools(ctx)
	must(t, err)
	for _, st := range sts {
		if st.Upstream == "fin" && st.Tool == tool {
			return st
		}
	}
	t.Fatalf("tool %s is not in the catalog", tool)
	return catalog.ToolState{}
}

// Versions are kept in order, definitions byte for byte; activating one
// supersedes the active one; version numbers are unique per tool; a tool
// of an unknown upstream is refused; removing an upstream removes its tools.
func testToolVersions(t *testing.T, s Store) {
	upstreams(t, s)
	v1, v2 := version("pay", 1, catalog.Active), version("pay", 2, catalog.Pending)
	v1.ActivatedAt, v1.ActivatedBy = t0, "system"
	v2.Flags = []string{catalog.FlagImperative, catalog.FlagURL}
	mustWrite(t, s, func(tx Tx) error {
		for _, v := range []catalog.Version{v1, v2, version("lookup", 1, catalog.Active)} {
			if err := tx.InsertToolVersion(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
	st := toolState(t, s, "pay")
	if len(st.Versions) != 2 {
		t.Fatalf("versions %+v", st.Versions)
	}
	for i, want := range []catalog.Version{v1, v2} {
		g := st.Versions[i]
		if g.Upstream != "fin" || g.Tool != "pay" || g.Version != want.Version || g.Digest != want.Digest || string(g.Definition) != string(want.Definition) ||
			g.Status != want.Status || !g.SeenAt.Equal(want.SeenAt) || !g.ActivatedAt.Equal(want.ActivatedAt) || g.ActivatedBy != want.ActivatedBy ||
			!slices.Equal(g.Flags, want.Flags) {
			t.Errorf("version %d read back as %+v, stored %+v", want.Version, g, want)
		}
	}
	err := write(s, func(tx Tx) error { return tx.InsertToolVersion(ctx, version("pay", 2, catalog.Pending)) })
	wantKind(t, err, fault.Conflict, "a second version 2")
	err = write(s, func(tx Tx) error {
		v := version("pay", 1, catalog.Pending)
		v.Upstream = "nope"
		return tx.InsertToolVersion(ctx, v)
	})
	wantKind(t, err, fault.NotFound, "a version of an unknown upstream's tool")

	mustWrite(t, s, func(tx Tx) error { return tx.ActivateToolVersion(ctx, "fin", "pay", 2, t0.Add(time.Hour), "carol") })
	st = toolState(t, s, "pay")
	if st.Versions[0].Status != catalog.Superseded || st.Versions[1].Status != catalog.Active || st.Versions[1].ActivatedBy != "carol" ||
		!st.Versions[1].ActivatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("after activating v2: %+v", st.Versions)
	}
	mustWrite(t, s, func(tx Tx) error { return tx.ActivateToolVersion(ctx, "fin", "pay", 1, t0.Add(2*time.Hour), "carol") }) // rollback
	if st = toolState(t, s, "pay"); st.Versions[0].Status != catalog.Active || st.Versions[1].Status != catalog.Superseded {
		t.Errorf("after rolling back to v1: %+v", st.Versions)
	}
	err = write(s, func(tx Tx) error { return tx.ActivateToolVersion(ctx, "fin", "pay", 7, t0, "carol") })
	wantKind(t, err, fault.NotFound, "activating a version that does not exist")
	if st = toolState(t, s, "pay"); st.Versions[0].Status != catalog.Active {
		t.Errorf("a refused activation changed the active version: %+v", st.Versions)
	}

	mustWrite(t, s, func(tx Tx) error { return tx.DeleteUpstream(ctx, "fin") })
	if sts, _ := s.CatalogTools(ctx); len(sts) != 0 {
		t.Errorf("the tools of a removed upstream remain: %+v", sts)
	}
	err = write(s, func(tx Tx) error { return tx.DeleteUpstream(ctx, "fin") })
	wantKind(t, err, fault.NotFound, "removing an upstream twice")
}

// What a sync saw is kept per tool: the presented digest, when it was
// first seen to differ (kept until an activation acknowledges it), whether
// the tool vanished, its timeout and labels.
func testToolState(t *testing.T, s Store) {
	upstreams(t, s)
	mustWrite(t, s, func(tx Tx) error {
		for _, v := range []catalog.Version{version("pay", 1, catalog.Active), version("pay", 2, catalog.Pending)} {
			if err := tx.InsertToolVersion(ctx, v); err != nil {
				return err
			}
		}
		return tx.SetToolPresented(ctx, "fin", "pay", "digest-pay-1", time.Time{})
	})
	if st := toolState(t, s, "pay"); st.Presented != "digest-pay-1" || !st.ChangedAt.IsZero() || st.Reviewed != "" || st.Vanished || st.Labels != nil || st.CallTimeout != 0 {
		t.Errorf("fresh tool: %+v", st)
	}
	changed := t0.Add(time.Hour)
	mustWrite(t, s, func(tx Tx) error { return tx.SetToolPresented(ctx, "fin", "pay", "digest-pay-2", changed) })
	mustWrite(t, s, func(tx Tx) error {
		return tx.SetToolPresented(ctx, "fin", "pay", "digest-pay-1", changed.Add(time.Hour))
	}) // flips back
	if st := toolState(t, s, "pay"); st.Presented != "digest-pay-1" || !st.ChangedAt.Equal(changed) {
		t.Errorf("a change mark is kept from when it was first seen: %+v", st)
	}
	mustWrite(t, s, func(tx Tx) error { return tx.SetToolPresented(ctx, "fin", "pay", "digest-pay-1", time.Time{}) })
	if st := toolState(t, s, "pay"); !st.ChangedAt.Equal(changed) {
		t.Error("a sync without a change cleared the mark")
	}
	mustWrite(t, s, func(tx Tx) error { return tx.ActivateToolVersion(ctx, "fin", "pay", 1, t0.Add(3*time.Hour), "carol") })
	if st := toolState(t, s, "pay"); !st.ChangedAt.IsZero() || st.Reviewed != "digest-pay-1" {
		t.Errorf("an activation acknowledges what is presented: %+v", st)
	}

	mustWrite(t, s, func(tx Tx) error { return tx.SetToolVanished(ctx, "fin", "pay", t0) })
	if !toolState(t, s, "pay").Vanished {
		t.Error("not vanished")
	}
	mustWrite(t, s, func(tx Tx) error { return tx.SetToolVanished(ctx, "fin", "pay", time.Time{}) })
	if toolState(t, s, "pay").Vanished {
		t.Error("still vanished after reappearing")
	}

	labels := &policy.Labels{DataClasses: []string{"pii"}, Risk: "high", Irreversible: true, RequireApproval: true, Approvers: 2, Owner: "fin-team"}
	mustWrite(t, s, func(tx Tx) error {
		if err := tx.SetToolTimeout(ctx, "fin", "pay", 2500*time.Millisecond); err != nil {
			return err
		}
		return tx.SetToolLabels(ctx, "fin", "pay", labels, t0, "carol")
	})
	st := toolState(t, s, "pay")
	if st.CallTimeout != 2500*time.Millisecond || st.Labels == nil || !slices.Equal(st.Labels.DataClasses, []string{"pii"}) || st.Labels.Risk != "high" ||
		!st.Labels.Irreversible || !st.Labels.RequireApproval || st.Labels.Approvers != 2 || st.Labels.Owner != "fin-team" ||
		!st.LabelledAt.Equal(t0) || st.LabelledBy != "carol" {
		t.Errorf("timeout and labels read back as %+v", st)
	}
	mustWrite(t, s, func(tx Tx) error {
		if err := tx.SetToolTimeout(ctx, "fin", "pay", 0); err != nil {
			return err
		}
		return tx.SetToolLabels(ctx, "fin", "pay", nil, t0, "carol")
	})
	if st := toolState(t, s, "pay"); st.CallTimeout != 0 || st.Labels != nil {
		t.Errorf("cleared timeout and labels read back as %v, %+v", st.CallTimeout, st.Labels)
	}
	err := write(s, func(tx Tx) error { return tx.SetToolTimeout(ctx, "fin", "nope", time.Second) })
	wantKind(t, err, fault.NotFound, "the timeout of an unknown tool")
	err = write(s, func(tx Tx) error { return tx.SetToolLabels(ctx, "local", "pay", labels, t0, "carol") })
	wantKind(t, err, fault.NotFound, "the labels of a tool of another upstream")
}

// A user's grants are the union of their roles' grants.
func testUserGrants(t *testing.T, s Store) {
	people(t, s)
	gs, err := s.UserGrants(ctx, "root")
	if err != nil || !slices.Equal(sorted(gs.Strings()), []string{"admin:*", "discover:*", "invoke:fin.*"}) {
		t.Errorf("root's grants %v, %v", gs, err)
	}
	_, err = s.UserGrants(ctx, "nobody")
	wantKind(t, err, fault.NotFound, "the grants of an unknown user")
}

// An OpenAPI upstream reads back with its document, operations and
// credential's configuration; its document can be replaced, and only an
// OpenAPI upstream's.
func testOpenAPIUpstream(t *testing.T, s Store) {
	o := spec.OpenAPI{Document: `{"openapi":"3.0.3"}`, Operations: []string{"getPet", "DELETE /pet/{id}"},
		Auth: &spec.HTTPAuth{Type: spec.AuthOAuth2, Secret: "cs", ClientID: "gw", TokenURL: "https://sso.example/token", Scopes: []string{"a", "b"}}}
	mustWrite(t, s, func(tx Tx) error {
		if err := tx.InsertUpstream(ctx, spec.Upstream{Name: "pets", Prefix: "pets", Kind: spec.HTTPAPI, URL: "https://pets.example/v3", OpenAPI: &o, CreatedAt: t0}); err != nil {
			return err
		}
		return tx.InsertUpstream(ctx, spec.Upstream{Name: "mcp", Kind: spec.HTTP, URL: "https://mcp.example/mcp", CreatedAt: t0})
	})
	u, err := s.UpstreamByName(ctx, "pets")
	if err != nil || u.Kind != spec.HTTPAPI || u.OpenAPI == nil || u.OpenAPI.Document != o.Document || !slices.Equal(u.OpenAPI.Operations, o.Operations) ||
		u.OpenAPI.Auth == nil || u.OpenAPI.Auth.TokenURL != o.Auth.TokenURL || !slices.Equal(u.OpenAPI.Auth.Scopes, []string{"a", "b"}) {
		t.Fatalf("pets read back as %+v, %v", u, err)
	}
	o.Document = `{"openapi":"3.1.0"}`
	mustWrite(t, s, func(tx Tx) error { return tx.SetUpstreamOpenAPI(ctx, "pets", o) })
	if u, _ := s.UpstreamByName(ctx, "pets"); u.OpenAPI == nil || u.OpenAPI.Document != o.Document {
		t.Errorf("replaced document: %+v", u.OpenAPI)
	}
	err = write(s, func(tx Tx) error { return tx.SetUpstreamOpenAPI(ctx, "mcp", o) })
	wantKind(t, err, fault.NotFound, "a document for an MCP upstream")
	if u, _ := s.UpstreamByName(ctx, "mcp"); u.Kind != spec.HTTP || u.OpenAPI != nil {
		t.Errorf("mcp became %+v", u)
	}
}
