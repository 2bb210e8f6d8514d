// Package storetest is the contract every store keeps, as one test suite
// run on each of them (store/sqlite today, a PostgreSQL store later). It
// sees a store only through the interfaces Ostiary's packages declare, so
// what passes here is what those packages may rely on: records read back
// exactly as appended, in order; a failed transaction leaves nothing; a
// conditional update is won by exactly one of the callers racing for it;
// a duplicate is a fault.Conflict and a missing row a fault.NotFound.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/vault"
)

// Store is everything Ostiary asks of a store outside a transaction.
type Store interface {
	audit.Store
	audit.Source
	// AuditHashAt returns the hash of indexed record seq, or a
	// fault.NotFound error.
	AuditHashAt(ctx context.Context, seq uint64) ([32]byte, error)
	// ResetIndex empties the audit index (audit reindex), keeping the
	// checkpoints and the reconciled position.
	ResetIndex(ctx context.Context) error
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
	// AuditAfter streams the records after seq of the given events, in
	// seq order (what recovery reads at start-up).
	AuditAfter(ctx context.Context, seq uint64, events []string, fn func(*audit.Record) error) error
	authn.Store
	identity.Reader
	approval.Store
	catalog.Store
	killswitch.Store
	policy.Store
	vault.Store
}

// Tx is everything Ostiary asks of a store's transaction (the audit.Tx
// that AuditBatch hands its function).
type Tx interface {
	audit.Tx
	identity.TxStore
	approval.TxStore
	catalog.TxStore
	killswitch.TxStore
	policy.TxStore
	vault.TxStore
}

// Run runs the whole suite. open returns a new, empty store for each test
// (and closes it when that test ends).
func Run(t *testing.T, open func(t *testing.T) Store) {
	for _, c := range []struct {
		name string
		test func(*testing.T, Store)
	}{
		{"AuditEmpty", testAuditEmpty},
		{"AuditReadBackInOrder", testAuditReadBack},
		{"AuditFailedBatchLeavesNothing", testAuditFailedBatch},
		{"AuditStepUndoesOnlyItself", testAuditStep},
		{"AuditSeqCannotRepeat", testAuditSeqUnique},
		{"AuditQuery", testAuditQuery},
		{"AuditAfter", testAuditAfter},
		{"AuditCheckpoints", testCheckpoints},
		{"AuditIndex", testAuditIndex},
		{"Users", testUsers},
		{"Roles", testRoles},
		{"Keys", testKeys},
		{"KeyRevokeOnce", testKeyRevokeOnce},
		{"CountAdminKeys", testCountAdminKeys},
		{"LookupCredential", testLookupCredential},
		{"TouchKeysNeverBackwards", testTouchKeys},
		{"ApprovalRoundTrip", testApprovalRoundTrip},
		{"ApprovalVotes", testApprovalVotes},
		{"ApprovalQueries", testApprovalQueries},
		{"ApprovalStatusOneRacerWins", testApprovalRace},
		{"Upstreams", testUpstreams},
		{"OpenAPIUpstream", testOpenAPIUpstream},
		{"ToolVersions", testToolVersions},
		{"ToolState", testToolState},
		{"UserGrants", testUserGrants},
		{"KillSwitches", testKillSwitches},
		{"Policies", testPolicies},
		{"VaultDataKey", testVaultDataKey},
		{"Secrets", testSecrets},
		{"SecretLifecycle", testSecretLifecycle},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
}

var ctx = context.Background()

// at is a time as every store keeps it: UTC, to the microsecond.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC().Truncate(time.Microsecond)
}

// t0 is the suite's "now".
var t0 = at("2026-03-01T10:00:00.123456Z")

// write runs fn in one transaction of s.
func write(s Store, fn func(tx Tx) error) error {
	return s.AuditBatch(ctx, func(atx audit.Tx) error {
		tx, ok := atx.(Tx)
		if !ok {
			return fmt.Errorf("storetest: transaction %T lacks some of the operations Ostiary needs", atx)
		}
		return fn(tx)
	})
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustWrite runs fn in one transaction and fails the test if it fails.
func mustWrite(t *testing.T, s Store, fn func(tx Tx) error) {
	t.Helper()
	must(t, write(s, fn))
}

// wantKind fails the test unless err is of kind k.
func wantKind(t *testing.T, err error, k fault.Kind, what string) {
	t.Helper()
	if !fault.Is(err, k) {
		t.Errorf("%s: %v, want a %s error", what, err, k)
	}
}

// sorted returns a sorted copy of ss.
func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}
