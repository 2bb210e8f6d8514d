// Package recovery marks, when a server starts, the calls that the
// previous run left without an outcome. Every decision record that sent a
// call upstream is followed, when the call ends, by that call's outcome
// record; a crash (or a stop that could not wait for a call) breaks that
// promise. At the next start, each such decision gets the outcome record
// it lacks, with outcome unknown-after-crash, citing the decision and the
// server start: the call may or may not have taken effect upstream, and
// the log says so instead of leaving a silent gap. See
// internal/audit/DESIGN.md, "Recovery marks the unknown".
package recovery

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
)

// outcomeOf maps each decision event to the event of its outcome record.
var outcomeOf = map[string]string{
	govern.EventToolCall:     govern.EventToolResult,
	govern.EventPromptGet:    govern.EventPromptResult,
	govern.EventResourceRead: govern.EventResourceResult,
}

// isOutcome holds the outcome events.
var isOutcome = map[string]bool{govern.EventToolResult: true, govern.EventPromptResult: true, govern.EventResourceResult: true}

// events are the decision and outcome events: the records recovery reads.
var events = []string{govern.EventToolCall, govern.EventToolResult, govern.EventPromptGet, govern.EventPromptResult,
	govern.EventResourceRead, govern.EventResourceResult}

// ReasonNoOutcome is the reason code of the outcome records recovery
// writes: the call's own outcome was never recorded.
const ReasonNoOutcome = "outcome-not-recorded"

// awaits reports whether r is a decision that sent a call upstream, and
// if so the event of the outcome record that call ends with. The rest
// need none: a decision that refused, held or failed a call ended it
// there (its outcome is on the decision itself); Ostiary's own tools
// (discover_tools, approval_status) answer without an upstream, so their
// decision names none; and a 2026-07-28 continuation (detail parked)
// hands the client's answer to a call already under way, whose outcome is
// recorded once, under the decision that started it, whoever waits when
// it ends.
func awaits(r *audit.Record) (outcome string, ok bool) {
	outcome, ok = outcomeOf[r.Event]
	if !ok || r.Outcome != audit.Success {
		return "", false
	}
	if up, _ := r.Detail["upstream"].(string); up == "" {
		return "", false
	}
	if parked, _ := r.Detail["parked"].(bool); parked {
		return "", false
	}
	return outcome, true
}

// call is what a decision and its outcome record share: the request, its
// principal and target, and the outcome's event.
type call struct{ outcome, requestID, target, actor, keyID string }

func callOf(outcome string, r *audit.Record) call {
	return call{outcome, r.RequestID, r.Target, r.Actor, r.KeyID}
}

// pairing finds, over records added in seq order, the decisions still
// waiting for their outcome. An outcome record names its decision by seq
// (detail decision_seq: govern writes it, and so does recovery); one
// written before outcomes named their decision is paired with the
// earliest open decision of the same request, principal and target (a
// client may reuse a request id, so this is the best those records allow).
// It holds the open decisions only.
type pairing struct {
	open   map[uint64]audit.Record
	byCall map[call][]uint64 // the open decisions of each call key, oldest first
}

func newPairing() *pairing {
	return &pairing{open: map[uint64]audit.Record{}, byCall: map[call][]uint64{}}
}

func (p *pairing) add(r *audit.Record) {
	if outcome, ok := awaits(r); ok {
		p.open[r.Seq] = *r
		k := callOf(outcome, r)
		p.byCall[k] = append(p.byCall[k], r.Seq)
		return
	}
	if !isOutcome[r.Event] {
		return
	}
	if seq, ok := number(r.Detail["decision_seq"]); ok {
		if d, open := p.open[seq]; open && outcomeOf[d.Event] == r.Event {
			p.close(seq)
		}
		return
	}
	if open := p.byCall[callOf(r.Event, r)]; len(open) > 0 {
		p.close(open[0])
	}
}

func (p *pairing) close(seq uint64) {
	d := p.open[seq]
	delete(p.open, seq)
	k := callOf(outcomeOf[d.Event], &d)
	if rest := slices.DeleteFunc(p.byCall[k], func(s uint64) bool { return s == seq }); len(rest) > 0 {
		p.byCall[k] = rest
	} else {
		delete(p.byCall, k)
	}
}

// unanswered returns the decisions without an outcome, oldest first.
func (p *pairing) unanswered() []audit.Record {
	return slices.SortedFunc(maps.Values(p.open), func(a, b audit.Record) int { return cmp.Compare(a.Seq, b.Seq) })
}

// number reads a non-negative integer from a detail value: json.Number
// as read back from a store, or an integer as written.
func number(v any) (uint64, bool) {
	switch n := v.(type) {
	case json.Number:
		u, err := strconv.ParseUint(string(n), 10, 64)
		return u, err == nil
	case uint64:
		return n, true
	case int:
		if n >= 0 {
			return uint64(n), true
		}
	case int64:
		if n >= 0 {
			return uint64(n), true
		}
	}
	return 0, false
}
