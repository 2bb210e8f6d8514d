package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

// EventOverdue is the alert that a secret's version is past its rotation
// date (or marked rotate-now): recorded when it falls due and then daily
// until a new version is set.
const EventOverdue = "secret-rotation-overdue"

// AlertEvery is how often an overdue secret's alert is repeated.
const AlertEvery = 24 * time.Hour

// Due returns when s's version is due to be replaced (zero: never) and
// whether that is at or before now. A rotate-now mark makes it due from
// the moment it was made, whatever the schedule.
func Due(s Secret, now time.Time) (time.Time, bool) {
	var due time.Time
	if s.RotateEvery > 0 {
		due = s.CreatedAt.Add(time.Duration(s.RotateEvery))
	}
	if s.RotateNow != nil && (due.IsZero() || s.RotateNow.At.Before(due)) {
		due = s.RotateNow.At
	}
	return due, !due.IsZero() && !now.Before(due)
}

// alertDue reports whether an overdue s needs its alert now: never
// alerted, alerted before it fell due (a rotate-now mark made since), or
// last alerted a day ago or more.
func alertDue(s Secret, due, now time.Time) bool {
	return s.AlertedAt.IsZero() || s.AlertedAt.Before(due) || now.Sub(s.AlertedAt) >= AlertEvery
}

// CheckOverdue records an alert (EventOverdue) for every secret past due
// whose alert is due (alertDue), and returns how many it recorded. Each
// alert is stored with the time it was made, in its record's transaction,
// so a restart neither repeats nor skips one.
func (v *Vault) CheckOverdue(ctx context.Context) (int, error) {
	ss, err := v.store.ListSecrets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, s := range ss {
		now := v.now()
		due, overdue := Due(s, now)
		if !overdue || !alertDue(s, due, now) {
			continue
		}
		cause := "schedule"
		if s.RotateNow != nil && !s.RotateNow.At.After(due) {
			cause = s.RotateNow.Cause
		}
		rec := audit.Record{Event: EventOverdue, Outcome: audit.Success, Actor: "system", Target: "secret:" + s.Name,
			Detail: map[string]any{"environment": s.Environment, "version": s.Version, "due_at": due.UTC().Format(time.RFC3339),
				"overdue_hours": int(now.Sub(due) / time.Hour), "cause": cause}}
		if s.RotateEvery > 0 {
			rec.Detail["rotate_every"] = s.RotateEvery.String()
		}
		if s.RotateNow != nil {
			rec.Detail["reason"] = s.RotateNow.Reason
		}
		_, err := v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			ts, ok := tx.(TxStore)
			if !ok {
				return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
			}
			return ts.SetAlerted(ctx, s.Name, s.Environment, s.Version, now.UTC())
		}})
		if err != nil {
			errs = append(errs, fmt.Errorf("overdue alert of secret %s (%s): %w", s.Name, s.Environment, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Run keeps the vault's lifecycle going until ctx ends: every interval it
// records the overdue alerts that are due (CheckOverdue) and releases the
// kill switches of compromised versions replaced since (ReleaseReplaced,
// in case a release was interrupted). It returns when ctx ends.
func (v *Vault) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := v.CheckOverdue(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		if err := v.ReleaseReplaced(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
