package recovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

// Store is what recovery reads of the audit log.
type Store interface {
	// QueryAudit returns the records matching q, newest first.
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
	// AuditAfter streams the records after seq whose event is one of
	// events, oldest first.
	AuditAfter(ctx context.Context, seq uint64, events []string, fn func(*audit.Record) error) error
}

// OpenAtStop is the detail of a server-stop record that says how many
// decisions on record still waited for their outcome when the server
// stopped (Tracker.Stop). Zero makes the stop a clean one: the next start
// reads nothing before it.
const OpenAtStop = "decisions_open"

// Recover writes, through w, an outcome record of outcome
// unknown-after-crash for every decision that the previous runs left
// without an outcome, and returns the records it wrote. Each has the
// decision's outcome event, request id, principal, remote address and
// target, and cites the decision (decision_seq) and this server's start
// (server_start, start as the audit log renders times).
//
// The server must record its start (server-start) only after Recover has
// returned: that record is what tells the next start that every decision
// before it has its outcome. Run again over the same log (a start that
// failed after Recover), it writes nothing twice: its own records are
// outcomes like any other.
func Recover(ctx context.Context, st Store, w audit.Appender, start time.Time) ([]audit.Record, error) {
	from, err := since(ctx, st)
	if err != nil {
		return nil, err
	}
	p := newPairing()
	if err := st.AuditAfter(ctx, from, events, func(r *audit.Record) error { p.add(r); return nil }); err != nil {
		return nil, fmt.Errorf("recovery: read the calls after record %d: %w", from, err)
	}
	open := p.unanswered()
	marks, errs := make([]audit.Record, len(open)), make([]error, len(open))
	// Written together, so that the writer commits them in a few batches.
	var wg sync.WaitGroup
	slots := make(chan struct{}, 64)
	for i, d := range open {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			marks[i], errs[i] = w.Write(ctx, audit.Entry{Record: mark(d, start)})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("recovery: record the calls left without an outcome: %w", err)
	}
	return marks, nil
}

// since is the seq after which a decision may still lack its outcome: the
// last server-start (every decision before it was paired or marked before
// it was written), or the stop that ended the run it began, if that stop
// left no decision open.
func since(ctx context.Context, st Store) (uint64, error) {
	last := func(event string) (*audit.Record, error) {
		rs, err := st.QueryAudit(ctx, audit.Query{Event: event, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("recovery: find the last %s: %w", event, err)
		}
		if len(rs) == 0 {
			return nil, nil
		}
		return &rs[0], nil
	}
	start, err := last(audit.EventServerStart)
	if err != nil {
		return 0, err
	}
	stop, err := last(audit.EventServerStop)
	if err != nil {
		return 0, err
	}
	var from uint64
	if start != nil {
		from = start.Seq
	}
	if stop != nil && stop.Seq > from {
		if n, ok := number(stop.Detail[OpenAtStop]); ok && n == 0 {
			from = stop.Seq
		}
	}
	return from, nil
}

// mark is the outcome record of decision d, which has none.
func mark(d audit.Record, start time.Time) audit.Record {
	return audit.Record{Event: outcomeOf[d.Event], Outcome: audit.UnknownAfterCrash, Reason: ReasonNoOutcome,
		Actor: d.Actor, KeyID: d.KeyID, RequestID: d.RequestID, Remote: d.Remote, Target: d.Target,
		Detail: map[string]any{"decision_seq": d.Seq, "server_start": audit.FormatTime(start), "upstream": d.Detail["upstream"]}}
}
