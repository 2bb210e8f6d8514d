package identity_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
)

type lossCall struct {
	user          string
	disabled      bool
	before, after []string
}

type lossRecorder struct {
	calls []lossCall
	fail  bool
}

func (l *lossRecorder) AccessLost(_ context.Context, _ audit.Tx, user string, disabled bool, before, after authz.Grants, r *audit.Record) error {
	l.calls = append(l.calls, lossCall{user, disabled, before.Strings(), after.Strings()})
	if l.fail {
		return fault.New(fault.Unavailable, "vault down")
	}
	if r.Detail == nil {
		r.Detail = map[string]any{}
	}
	r.Detail["told"] = true
	return nil
}

// SetRoles replaces a user's roles, needs every grant taken away or given,
// keeps an admin, and tells what is told of access losses, in the change's
// transaction: its failure undoes the change. Disabling tells it once.
func TestSetRoles(t *testing.T) {
	f := newFixture(t)
	loss := &lossRecorder{}
	f.svc.SetAccessLoss(loss)
	for _, r := range []identity.NewRole{{Name: "secrets", Grants: []string{"manage-secrets:*"}}, {Name: "caller", Grants: []string{"invoke:fin.*"}},
		{Name: "ids", Grants: []string{"manage-identities:*", "invoke:fin.*"}}} {
		if _, err := f.svc.CreateRole(ctx, f.admin, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.CreateUser(ctx, f.admin, identity.NewUser{Name: "bob", Roles: []string{"secrets", "caller"}}); err != nil {
		t.Fatal(err)
	}
	u, err := f.svc.SetRoles(ctx, f.admin, "bob", []string{"caller", "caller"})
	if err != nil || !slices.Equal(u.Roles, []string{"caller"}) {
		t.Fatalf("set roles: %+v %v", u, err)
	}
	if rec := f.last(t); rec.Event != identity.EventUserRoles || rec.Detail["told"] != true {
		t.Errorf("record: %+v", rec)
	}
	if len(loss.calls) != 1 || loss.calls[0].disabled || !slices.Contains(loss.calls[0].before, "manage-secrets:*") || slices.Contains(loss.calls[0].after, "manage-secrets:*") {
		t.Errorf("told %+v", loss.calls)
	}
	// A lesser manager cannot take away (or give) what they do not hold.
	if _, err := f.svc.CreateUser(ctx, f.admin, identity.NewUser{Name: "ida", Roles: []string{"ids"}}); err != nil {
		t.Fatal(err)
	}
	ida := f.keyFor(t, "ida")
	if _, err := f.svc.CreateUser(ctx, f.admin, identity.NewUser{Name: "sam", Roles: []string{"secrets"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetRoles(ctx, ida, "sam", nil); !fault.Is(err, fault.Forbidden) {
		t.Errorf("taking away a grant not held: %v", err)
	}
	if _, err := f.svc.SetRoles(ctx, ida, "bob", []string{"secrets"}); !fault.Is(err, fault.Forbidden) {
		t.Errorf("giving a grant not held: %v", err)
	}
	reader := &authn.Principal{User: "eve", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}
	if _, err := f.svc.SetRoles(ctx, reader, "bob", nil); !fault.Is(err, fault.Forbidden) {
		t.Errorf("without manage-identities: %v", err)
	}
	if _, err := f.svc.SetRoles(ctx, f.admin, "admin", nil); !fault.Is(err, fault.Conflict) {
		t.Errorf("the last admin's roles taken away: %v", err)
	}
	// A failure to mark undoes the change.
	loss.fail = true
	if _, err := f.svc.SetRoles(ctx, f.admin, "sam", nil); !fault.Is(err, fault.Unavailable) {
		t.Errorf("with the vault down: %v", err)
	}
	if u, _ := f.env.Store.UserByName(ctx, "sam"); !slices.Equal(u.Roles, []string{"secrets"}) {
		t.Errorf("sam's roles changed anyway: %v", u.Roles)
	}
	if _, err := f.svc.SetDisabled(ctx, f.admin, "sam", true); !fault.Is(err, fault.Unavailable) {
		t.Errorf("disabling with the vault down: %v", err)
	}
	if u, _ := f.env.Store.UserByName(ctx, "sam"); u.Disabled {
		t.Error("sam disabled anyway")
	}
	loss.fail = false
	n := len(loss.calls)
	if _, err := f.svc.SetDisabled(ctx, f.admin, "sam", true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetDisabled(ctx, f.admin, "sam", true); err != nil { // already disabled: not told again
		t.Fatal(err)
	}
	if got := loss.calls[n:]; len(got) != 1 || !got[0].disabled || got[0].user != "sam" {
		t.Errorf("disable told %+v", got)
	}
}
