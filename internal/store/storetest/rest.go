package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/vault"
)

// Switches are listed in the order engaged, released ones included; of
// concurrent releases of one switch exactly one wins.
func testKillSwitches(t *testing.T, s Store) {
	sws := []killswitch.Switch{
		{ID: "ks_b", Kind: killswitch.Tool, Target: "fin.pay", Reason: "leaking", EngagedBy: "root", EngagedAt: t0.Add(time.Minute)},
		{ID: "ks_a", Kind: killswitch.All, Target: "", Reason: "incident 42", EngagedBy: "carol", EngagedAt: t0},
	}
	mustWrite(t, s, func(tx Tx) error {
		for _, sw := range sws {
			if err := tx.InsertKillSwitch(ctx, sw); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.ListKillSwitches(ctx)
	if err != nil || len(got) != 2 || got[0].ID != "ks_a" || got[1].ID != "ks_b" {
		t.Fatalf("switches %+v, %v", got, err)
	}
	if g, w := got[1], sws[0]; g.Kind != w.Kind || g.Target != w.Target || g.Reason != w.Reason || g.EngagedBy != w.EngagedBy || !g.EngagedAt.Equal(w.EngagedAt) || !g.Active() {
		t.Errorf("switch read back as %+v, stored %+v", g, w)
	}
	const racers = 6
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			errs[i] = write(s, func(tx Tx) error { return tx.ReleaseKillSwitch(ctx, "ks_b", "dave", "fixed", t0.Add(time.Hour)) })
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
		} else if !fault.Is(err, fault.Conflict) {
			t.Errorf("racer %d: %v, want a conflict", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d releases of one switch succeeded", wins)
	}
	got, _ = s.ListKillSwitches(ctx)
	if g := got[1]; g.Active() || g.ReleasedBy != "dave" || g.ReleaseReason != "fixed" || !g.ReleasedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("released switch read back as %+v", g)
	}
	if !got[0].Active() {
		t.Error("releasing one switch released another")
	}
	err = write(s, func(tx Tx) error { return tx.ReleaseKillSwitch(ctx, "ks_zz", "dave", "x", t0) })
	wantKind(t, err, fault.Conflict, "releasing a switch that does not exist")
}

// Policy versions are unique; the newest is version 0's answer; listing
// is newest first.
func testPolicies(t *testing.T, s Store) {
	_, err := s.Policy(ctx, 0)
	wantKind(t, err, fault.NotFound, "the newest policy of an empty store")
	vs := []policy.Version{
		{Version: 1, Digest: "d1", Description: "first", Rules: 2, Tests: 1, CreatedAt: t0, CreatedBy: "system", Source: "rules: []\n"},
		{Version: 2, Digest: "d2", Description: "second", Rules: 3, Tests: 0, CreatedAt: t0.Add(time.Hour), CreatedBy: "carol", Source: "rules:\n- id: x\n"},
	}
	for _, v := range vs {
		mustWrite(t, s, func(tx Tx) error { return tx.InsertPolicy(ctx, v) })
	}
	same := func(g, w policy.Version) bool {
		return g.Version == w.Version && g.Digest == w.Digest && g.Description == w.Description && g.Rules == w.Rules && g.Tests == w.Tests &&
			g.CreatedAt.Equal(w.CreatedAt) && g.CreatedBy == w.CreatedBy
	}
	if g, err := s.Policy(ctx, 0); err != nil || !same(g, vs[1]) || g.Source != vs[1].Source {
		t.Errorf("newest: %+v, %v", g, err)
	}
	if g, err := s.Policy(ctx, 1); err != nil || !same(g, vs[0]) || g.Source != vs[0].Source {
		t.Errorf("version 1: %+v, %v", g, err)
	}
	_, err = s.Policy(ctx, 3)
	wantKind(t, err, fault.NotFound, "a policy version that does not exist")
	all, err := s.Policies(ctx)
	if err != nil || len(all) != 2 || !same(all[0], vs[1]) || !same(all[1], vs[0]) {
		t.Errorf("policies %+v, %v", all, err)
	}
	err = write(s, func(tx Tx) error {
		return tx.InsertPolicy(ctx, policy.Version{Version: 2, Digest: "d3", CreatedAt: t0})
	})
	wantKind(t, err, fault.Conflict, "a second version 2")
}

// The data key is saved once; further wrappings are added (newest first)
// and may retire the others.
func testVaultDataKey(t *testing.T, s Store) {
	if ws, err := s.WrappedDataKeys(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("a new store has wrappings %v, %v", ws, err)
	}
	mustWrite(t, s, func(tx Tx) error { return tx.SaveWrappedDataKey(ctx, []byte("wrap-1"), t0) })
	err := write(s, func(tx Tx) error { return tx.SaveWrappedDataKey(ctx, []byte("wrap-x"), t0) })
	wantKind(t, err, fault.Conflict, "a second data key")
	var n int
	mustWrite(t, s, func(tx Tx) error {
		var err error
		n, err = tx.AddDataKeyWrap(ctx, []byte("wrap-2"), t0.Add(time.Minute), false)
		return err
	})
	ws, err := s.WrappedDataKeys(ctx)
	if err != nil || n != 2 || len(ws) != 2 || string(ws[0]) != "wrap-2" || string(ws[1]) != "wrap-1" {
		t.Errorf("after adding a wrapping: %d, %q, %v", n, ws, err)
	}
	mustWrite(t, s, func(tx Tx) error {
		var err error
		n, err = tx.AddDataKeyWrap(ctx, []byte("wrap-3"), t0.Add(2*time.Minute), true)
		return err
	})
	if ws, _ := s.WrappedDataKeys(ctx); n != 1 || len(ws) != 1 || string(ws[0]) != "wrap-3" {
		t.Errorf("after retiring the others: %d, %q", n, ws)
	}
}

// A secret has versions per environment; the latest is what is resolved
// and listed; a version is stored once.
func testSecrets(t *testing.T, s Store) {
	sealed := func(name, env string, v int, ct string) vault.Sealed {
		return vault.Sealed{Secret: vault.Secret{Name: name, Environment: env, Version: v, Upstreams: []string{"fin", "hr"}, CreatedAt: t0.Add(time.Duration(v) * time.Minute),
			CreatedBy: "root"}, Nonce: []byte("nonce-" + ct), Ciphertext: []byte(ct)}
	}
	mustWrite(t, s, func(tx Tx) error {
		for _, x := range []vault.Sealed{sealed("api", "default", 1, "c1"), sealed("api", "default", 2, "c2"), sealed("api", "prod", 1, "p1"), sealed("db", "default", 1, "d1")} {
			if err := tx.InsertSecret(ctx, x); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.LatestSecret(ctx, "api", "default")
	if err != nil || got.Version != 2 || string(got.Ciphertext) != "c2" || string(got.Nonce) != "nonce-c2" || !slices.Equal(got.Upstreams, []string{"fin", "hr"}) ||
		!got.CreatedAt.Equal(t0.Add(2*time.Minute)) || got.CreatedBy != "root" || !got.LastAccessed.IsZero() {
		t.Errorf("latest api/default: %+v, %v", got, err)
	}
	if got, err := s.LatestSecret(ctx, "api", "prod"); err != nil || string(got.Ciphertext) != "p1" {
		t.Errorf("latest api/prod: %+v, %v", got, err)
	}
	_, err = s.LatestSecret(ctx, "db", "prod")
	wantKind(t, err, fault.NotFound, "a secret with no value in an environment")
	list, err := s.ListSecrets(ctx)
	var keys []string
	for _, x := range list {
		keys = append(keys, x.Name+"/"+x.Environment+"@"+string(rune('0'+x.Version)))
	}
	if err != nil || !slices.Equal(keys, []string{"api/default@2", "api/prod@1", "db/default@1"}) {
		t.Errorf("listed %v, %v", keys, err)
	}
	err = write(s, func(tx Tx) error { return tx.InsertSecret(ctx, sealed("api", "default", 2, "again")) })
	wantKind(t, err, fault.Conflict, "a second version 2")
	must(t, s.TouchSecret(ctx, "api", "default", 2, t0.Add(time.Hour)))
	mustWrite(t, s, func(tx Tx) error { return tx.TouchSecret(ctx, "api", "prod", 1, t0.Add(2*time.Hour)) })
	if got, _ := s.LatestSecret(ctx, "api", "default"); !got.LastAccessed.Equal(t0.Add(time.Hour)) {
		t.Errorf("last accessed %v", got.LastAccessed)
	}
	if got, _ := s.LatestSecret(ctx, "api", "prod"); !got.LastAccessed.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("last accessed in a transaction: %v", got.LastAccessed)
	}
}
