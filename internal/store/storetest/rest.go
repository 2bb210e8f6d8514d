package storetest

import (
	"fmt"
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
		n, err = tx.AddDataKeyWrap(ctx, []vault.WrappedKey{{KeyID: 1, Wrapped: []byte("wrap-2")}}, t0.Add(time.Minute), false)
		return err
	})
	ws, err := s.WrappedDataKeys(ctx)
	if err != nil || n != 2 || len(ws) != 2 || string(ws[0].Wrapped) != "wrap-2" || string(ws[1].Wrapped) != "wrap-1" || ws[1].KeyID != 1 {
		t.Errorf("after adding a wrapping: %d, %+v, %v", n, ws, err)
	}
	mustWrite(t, s, func(tx Tx) error {
		var err error
		n, err = tx.AddDataKeyWrap(ctx, []vault.WrappedKey{{KeyID: 1, Wrapped: []byte("wrap-3")}}, t0.Add(2*time.Minute), true)
		return err
	})
	if ws, _ := s.WrappedDataKeys(ctx); n != 1 || len(ws) != 1 || string(ws[0].Wrapped) != "wrap-3" {
		t.Errorf("after retiring the others: %d, %+v", n, ws)
	}
	// A second data key (a rotation): its wrappings are its own; it exists
	// once; the first cannot be retired while a value is sealed under it.
	mustWrite(t, s, func(tx Tx) error {
		return tx.AddDataKey(ctx, []vault.WrappedKey{{KeyID: 2, Wrapped: []byte("k2-a")}, {KeyID: 2, Wrapped: []byte("k2-b")}}, t0)
	})
	err = write(s, func(tx Tx) error {
		return tx.AddDataKey(ctx, []vault.WrappedKey{{KeyID: 2, Wrapped: []byte("k2-c")}}, t0)
	})
	wantKind(t, err, fault.Conflict, "a data key added twice")
	mustWrite(t, s, func(tx Tx) error {
		return tx.InsertSecret(ctx, vault.Sealed{Secret: vault.Secret{Name: "k", Environment: "default", Version: 1, Upstreams: []string{"u"}, CreatedAt: t0, CreatedBy: "root"},
			KeyID: 1, Nonce: []byte("n"), Ciphertext: []byte("c")})
	})
	err = write(s, func(tx Tx) error { return tx.RetireDataKey(ctx, 1) })
	wantKind(t, err, fault.Conflict, "retiring a data key a value is sealed under")
	if n, err := s.CountSealedNotUnder(ctx, 2); err != nil || n != 1 {
		t.Errorf("sealed under other keys than 2: %d, %v", n, err)
	}
	mustWrite(t, s, func(tx Tx) error {
		rows, err := tx.SealedNotUnder(ctx, 2, 10)
		if err != nil || len(rows) != 1 {
			return fmt.Errorf("rows under old keys: %v, %v", rows, err)
		}
		rows[0].KeyID, rows[0].Ciphertext = 2, []byte("c2")
		if err := tx.Reseal(ctx, rows[0]); err != nil {
			return err
		}
		return tx.RetireDataKey(ctx, 1)
	})
	ws, _ = s.WrappedDataKeys(ctx)
	if len(ws) != 2 || ws[0].KeyID != 2 || ws[1].KeyID != 2 {
		t.Errorf("after retiring key 1: %+v", ws)
	}
	if got, _ := s.LatestSecret(ctx, "k", "default"); got.KeyID != 2 || string(got.Ciphertext) != "c2" {
		t.Errorf("resealed: %+v", got)
	}
}

// A version's lifecycle: its schedule, its rotate-now mark (the first one
// kept), its last alert and its kill switches, stale once replaced.
func testSecretLifecycle(t *testing.T, s Store) {
	sealed := func(v int) vault.Sealed {
		return vault.Sealed{Secret: vault.Secret{Name: "life", Environment: "prod", Version: v, Upstreams: []string{"fin"}, CreatedAt: t0, CreatedBy: "root",
			RotateEvery: vault.Period(90 * 24 * time.Hour)}, KeyID: 1, Nonce: []byte("n"), Ciphertext: []byte("c")}
	}
	mustWrite(t, s, func(tx Tx) error { return tx.InsertSecret(ctx, sealed(1)) })
	f := vault.Flag{At: t0, By: "root", Cause: vault.CauseCompromised, Reason: "leaked"}
	mustWrite(t, s, func(tx Tx) error {
		if ok, err := tx.MarkRotateNow(ctx, "life", "prod", 1, f); !ok || err != nil {
			return fmt.Errorf("first mark: %v %v", ok, err)
		}
		if ok, err := tx.MarkRotateNow(ctx, "life", "prod", 1, vault.Flag{Reason: "second"}); ok || err != nil {
			return fmt.Errorf("second mark: %v %v", ok, err)
		}
		if err := tx.SetAlerted(ctx, "life", "prod", 1, t0.Add(time.Hour)); err != nil {
			return err
		}
		return tx.SetKillSwitches(ctx, "life", "prod", 1, []string{"ks-a", "ks-b"})
	})
	got, err := s.LatestSecret(ctx, "life", "prod")
	if err != nil || got.RotateEvery != vault.Period(90*24*time.Hour) || got.RotateNow == nil || *got.RotateNow != f ||
		!got.AlertedAt.Equal(t0.Add(time.Hour)) || !slices.Equal(got.KillSwitches, []string{"ks-a", "ks-b"}) {
		t.Fatalf("marked version: %+v %v", got, err)
	}
	if st, err := s.StaleKillSwitches(ctx); err != nil || len(st) != 0 {
		t.Errorf("stale before a new version: %v %v", st, err)
	}
	next := sealed(2)
	next.RotateEvery = 0
	mustWrite(t, s, func(tx Tx) error { return tx.InsertSecret(ctx, next) })
	got, _ = s.LatestSecret(ctx, "life", "prod")
	if got.RotateNow != nil || !got.AlertedAt.IsZero() || got.KillSwitches != nil || got.RotateEvery != 0 {
		t.Errorf("a new version starts clean: %+v", got)
	}
	st, err := s.StaleKillSwitches(ctx)
	if err != nil || len(st) != 1 || st[0].Version != 1 || !slices.Equal(st[0].KillSwitches, []string{"ks-a", "ks-b"}) {
		t.Fatalf("stale after a new version: %+v %v", st, err)
	}
	must(t, s.ClearKillSwitches(ctx, "life", "prod", 1))
	if st, _ := s.StaleKillSwitches(ctx); len(st) != 0 {
		t.Errorf("stale after clearing: %+v", st)
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
