package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/killswitch"
)

// EventCompromised records that a secret was declared compromised.
const EventCompromised = "secret-compromised"

// Killer engages and releases kill switches (the killswitch service).
type Killer interface {
	Engage(ctx context.Context, p *authn.Principal, kind killswitch.Kind, target, reason string) (killswitch.Switch, error)
	Release(ctx context.Context, p *authn.Principal, id, reason string) (killswitch.Switch, error)
}

// SetKiller installs the kill switches Compromised may engage.
func (v *Vault) SetKiller(k Killer) {
	v.mu.Lock()
	v.kill = k
	v.mu.Unlock()
}

func (v *Vault) killer() Killer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.kill
}

// system releases the kill switches the vault engaged, once the secret
// they protect has been replaced.
var system = &authn.Principal{User: "system", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.OperateKillswitch, Resource: authz.All}}}}

// MaxReason bounds the reason given for a compromise.
const MaxReason = 1000

// Compromised marks the current version of name in env for immediate
// rotation (manage-secrets:*): it is overdue from now on, alerted daily,
// until a new version is set. With kill (which also needs
// operate-killswitch:*), a kill switch is first engaged on every upstream
// the secret is scoped to; they are released when the new version is set.
func (v *Vault) Compromised(ctx context.Context, p *authn.Principal, name, env, reason string, kill bool) (Secret, error) {
	if env == "" {
		env = authn.DefaultEnvironment
	}
	reason = strings.TrimSpace(reason)
	rec := p.Record(EventCompromised, "secret:"+name)
	rec.Detail = map[string]any{"environment": env, "reason": reason, "kill": kill}
	switch {
	case !p.Allows(authz.ManageSecrets, authz.All):
		return Secret{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-secrets grant"))
	case kill && !p.Allows(authz.OperateKillswitch, authz.All):
		return Secret{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: --kill needs the operate-killswitch:* grant"))
	case kill && v.killer() == nil:
		return Secret{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Unavailable, "no kill switches on this server"))
	case !ValidName(name) || !authn.ValidEnvironment(env):
		return Secret{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "invalid secret or environment name"))
	case reason == "":
		return Secret{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "a reason is required"))
	case len(reason) > MaxReason:
		return Secret{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "the reason is longer than %d characters", MaxReason))
	}
	cur, err := v.store.LatestSecret(ctx, name, env)
	if err != nil {
		return Secret{}, audit.Refuse(ctx, v.audit, rec, err)
	}
	var ids []string
	if kill {
		k := v.killer()
		for _, u := range cur.Upstreams {
			sw, err := k.Engage(ctx, p, killswitch.Upstream, u, fmt.Sprintf("secret %s (%s) compromised: %s", name, env, reason))
			if err != nil {
				// The switches engaged so far stay engaged (fail closed)
				// and on record; the mark is refused with the cause.
				rec.Detail["kill_switches"] = ids
				return Secret{}, audit.Refuse(ctx, v.audit, rec, err)
			}
			ids = append(ids, sw.ID)
		}
		rec.Detail["kill_switches"] = ids
	}
	var out Secret
	_, err = v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		s, err := ts.LatestSecret(ctx, name, env)
		if err != nil {
			return err
		}
		r.Detail["version"] = s.Version
		f := Flag{At: v.now().UTC(), By: p.User, Cause: CauseCompromised, Reason: reason}
		if _, err := ts.MarkRotateNow(ctx, name, env, s.Version, f); err != nil {
			return err
		}
		if len(ids) > 0 {
			if err := ts.SetKillSwitches(ctx, name, env, s.Version, append(slices.Clone(s.KillSwitches), ids...)); err != nil {
				return err
			}
		}
		out = s.Secret
		if out.RotateNow == nil {
			out.RotateNow = &f
		}
		out.KillSwitches = append(out.KillSwitches, ids...)
		out.RotationDue, out.Overdue = Due(out, v.now())
		return nil
	}})
	return out, err
}

// ReleaseReplaced releases the kill switches engaged for compromised
// versions that have been replaced since (each release recorded by the
// kill switch service), then forgets them.
func (v *Vault) ReleaseReplaced(ctx context.Context) error {
	k := v.killer()
	if k == nil {
		return nil
	}
	stale, err := v.store.StaleKillSwitches(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range stale {
		ok := true
		for _, id := range s.KillSwitches {
			_, err := k.Release(ctx, system, id, fmt.Sprintf("secret %s (%s) replaced: version %d is no longer served", s.Name, s.Environment, s.Version))
			if err != nil && !fault.Is(err, fault.NotFound) { // not found: released by hand meanwhile
				errs = append(errs, err)
				ok = false
			}
		}
		if ok {
			if err := v.store.ClearKillSwitches(ctx, s.Name, s.Environment, s.Version); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// reaches reports whether grants let their holder reach every secret's
// value: manage-secrets sets them (and admin implies it); manage-tools:*
// can point an upstream a secret is scoped to at a server of its
// choosing, which then receives the value.
func reaches(gs authz.Grants) bool {
	return gs.Allows(authz.ManageSecrets, authz.All) || gs.Allows(authz.ManageTools, authz.All)
}

// AccessLost is told, inside the transaction of the change (r is its
// record), that user is being disabled (after nil) or that their grants
// go from before to after. Every secret they could reach is marked
// rotate-now: all of them if before reached every value and after no
// longer does; else, if they are disabled, those whose current version
// they set (they handled its value). The names marked go in r's detail.
func (v *Vault) AccessLost(ctx context.Context, tx audit.Tx, user string, disabled bool, before, after authz.Grants, r *audit.Record) error {
	ts, ok := tx.(TxStore)
	if !ok {
		return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
	}
	all := reaches(before) && (disabled || !reaches(after))
	if !all && !disabled {
		return nil
	}
	ss, err := ts.ListSecrets(ctx)
	if err != nil {
		return err
	}
	why := "user " + user + " disabled"
	if !disabled {
		why = "user " + user + " lost the grants that reach secret values"
	}
	f := Flag{At: v.now().UTC(), By: r.Actor, Cause: CauseStaffChange, Reason: why}
	marked := []string{}
	for _, s := range ss {
		if !all && s.CreatedBy != user {
			continue
		}
		if _, err := ts.MarkRotateNow(ctx, s.Name, s.Environment, s.Version, f); err != nil {
			return err
		}
		marked = append(marked, s.Name+" ("+s.Environment+")")
	}
	if len(marked) > 0 {
		if r.Detail == nil {
			r.Detail = map[string]any{}
		}
		r.Detail["secrets_rotate_now"] = marked
	}
	return nil
}
