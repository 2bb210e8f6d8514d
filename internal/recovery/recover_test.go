package recovery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
)

var ctx = context.Background()

// chain is a real store and audit writer, and what recovery read of it.
type chain struct {
	t    *testing.T
	env  *sqlitetest.Env
	from []uint64 // the seq each AuditAfter read after
}

func newLog(t *testing.T) *chain {
	return &chain{t: t, env: sqlitetest.New(t, time.Now)}
}

func (l *chain) QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	return l.env.QueryAudit(ctx, q)
}

func (l *chain) AuditAfter(ctx context.Context, seq uint64, events []string, fn func(*audit.Record) error) error {
	l.from = append(l.from, seq)
	l.env.Settle()
	return l.env.Store.AuditAfter(ctx, seq, events, fn)
}

// write appends r and returns it as sealed.
func (l *chain) write(r audit.Record) audit.Record {
	l.t.Helper()
	out, err := l.env.Writer.Write(ctx, audit.Entry{Record: r})
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (l *chain) start() audit.Record {
	return l.write(audit.Record{Event: audit.EventServerStart, Outcome: audit.Success, Actor: "system"})
}

func (l *chain) stop(detail map[string]any) audit.Record {
	return l.write(audit.Record{Event: audit.EventServerStop, Outcome: audit.Success, Actor: "system", Detail: detail})
}

// call writes a decision that sends a tool call upstream.
func (l *chain) call(rid string) audit.Record {
	r := rec(0, govern.EventToolCall, audit.Success, rid, "tool:crm.lookup", map[string]any{"decision": "allow"})
	r.Remote = "127.0.0.1:5000"
	return l.write(r)
}

// answer writes the outcome of decision d.
func (l *chain) answer(d audit.Record) audit.Record {
	return l.write(rec(0, outcomeOf[d.Event], audit.Success, d.RequestID, d.Target, map[string]any{"decision_seq": d.Seq}))
}

func (l *chain) recover(at time.Time) []audit.Record {
	l.t.Helper()
	marks, err := Recover(ctx, l, l.env.Writer, at)
	if err != nil {
		l.t.Fatal(err)
	}
	return marks
}

// After a crash, the calls under way get their outcome record: the
// decision's event pair, request, principal, remote and target, outcome
// unknown-after-crash, citing the decision and the start. The rest of the
// run (answered calls, refusals, built-ins, continuations) gets nothing;
// a second recovery over the same log adds nothing; the chain verifies.
func TestRecoverMarksCallsUnderWay(t *testing.T) {
	l := newLog(t)
	l.start()
	l.answer(l.call("answered"))
	under := l.call("under-way")
	l.write(rec(0, govern.EventToolCall, audit.Denied, "refused", "tool:crm.lookup", nil))
	l.write(rec(0, govern.EventToolCall, audit.Success, "builtin", "tool:discover_tools", map[string]any{"upstream": nil}))
	parked := l.call("parked")
	l.write(rec(0, govern.EventToolCall, audit.Success, "continued", "tool:crm.lookup", map[string]any{"parked": true}))
	prompt := l.write(rec(0, govern.EventPromptGet, audit.Success, "prompt", "prompt:crm.greet", nil))
	// crash: no stop

	at := time.Date(2026, 8, 1, 9, 30, 0, 123456789, time.UTC)
	marks := l.recover(at)
	if len(marks) != 3 {
		t.Fatalf("%d marks, want 3 (the call under way, the parked call, the prompt): %+v", len(marks), marks)
	}
	byDecision := map[uint64]audit.Record{}
	for _, m := range marks {
		seq, _ := number(m.Detail["decision_seq"])
		byDecision[seq] = m
	}
	for _, d := range []audit.Record{under, parked, prompt} {
		m, ok := byDecision[d.Seq]
		switch {
		case !ok:
			t.Errorf("decision %d (%s) not marked", d.Seq, d.RequestID)
		case m.Event != outcomeOf[d.Event] || m.Outcome != audit.UnknownAfterCrash || m.Reason != ReasonNoOutcome:
			t.Errorf("mark of %d: %s %s %s", d.Seq, m.Event, m.Outcome, m.Reason)
		case m.RequestID != d.RequestID || m.Actor != d.Actor || m.KeyID != d.KeyID || m.Target != d.Target || m.Remote != d.Remote:
			t.Errorf("mark of %d is not the decision's call: %+v, decision %+v", d.Seq, m, d)
		case m.Detail["server_start"] != "2026-08-01T09:30:00.123456Z" || m.Detail["upstream"] != "crm":
			t.Errorf("mark of %d: detail %v", d.Seq, m.Detail)
		case m.Seq <= d.Seq:
			t.Errorf("mark %d before its decision %d", m.Seq, d.Seq)
		}
	}
	// The start failed after recovery (no server-start): the next reads
	// the same records, and finds the marks.
	if again := l.recover(at.Add(time.Minute)); len(again) != 0 {
		t.Errorf("a second recovery marked %d more", len(again))
	}
	l.start()
	if again := l.recover(at.Add(2 * time.Minute)); len(again) != 0 {
		t.Errorf("recovery after the start marked %d more", len(again))
	}
	l.env.Verify(t)
	if n := len(l.env.Records(t)); n != 13 { // 9 written, 3 marks, the start
		t.Errorf("%d records, want 13", n)
	}
}

// How far back recovery reads: from the last server start (every decision
// before it has its outcome), or from the stop that ended that run if the
// stop left no decision open. A stop that left some, or an older one that
// does not say, is not clean.
func TestRecoverReadsFromTheLastStart(t *testing.T) {
	t.Run("crash", func(t *testing.T) {
		l := newLog(t)
		l.call("before the last start, marked then")
		s := l.start()
		d := l.call("under way")
		marks := l.recover(time.Now())
		if l.from[0] != s.Seq || len(marks) != 1 || marks[0].RequestID != d.RequestID {
			t.Errorf("read after %d (want %d), marked %+v", l.from[0], s.Seq, marks)
		}
	})
	t.Run("clean stop", func(t *testing.T) {
		l := newLog(t)
		l.start()
		l.answer(l.call("answered"))
		stop := l.stop(map[string]any{OpenAtStop: 0})
		if marks := l.recover(time.Now()); l.from[0] != stop.Seq || len(marks) != 0 {
			t.Errorf("read after %d (want the stop, %d), marked %+v", l.from[0], stop.Seq, marks)
		}
	})
	t.Run("a stop that left a call under way", func(t *testing.T) {
		l := newLog(t)
		s := l.start()
		d := l.call("under way")
		l.stop(map[string]any{OpenAtStop: 1})
		marks := l.recover(time.Now())
		if l.from[0] != s.Seq || len(marks) != 1 || marks[0].RequestID != d.RequestID {
			t.Errorf("read after %d (want %d), marked %+v", l.from[0], s.Seq, marks)
		}
	})
	t.Run("a stop that does not say", func(t *testing.T) {
		l := newLog(t)
		s := l.start()
		l.call("under way")
		l.stop(nil)
		if marks := l.recover(time.Now()); l.from[0] != s.Seq || len(marks) != 1 {
			t.Errorf("read after %d (want %d), marked %+v", l.from[0], s.Seq, marks)
		}
	})
	t.Run("a clean stop of an earlier run", func(t *testing.T) {
		l := newLog(t)
		l.start()
		l.stop(map[string]any{OpenAtStop: 0})
		s := l.start()
		l.call("under way")
		if marks := l.recover(time.Now()); l.from[0] != s.Seq || len(marks) != 1 {
			t.Errorf("read after %d (want %d), marked %+v", l.from[0], s.Seq, marks)
		}
	})
	t.Run("a fresh log", func(t *testing.T) {
		l := newLog(t)
		l.write(audit.Record{Event: audit.EventSystemInit, Outcome: audit.Success, Actor: "system"})
		if marks := l.recover(time.Now()); l.from[0] != 0 || len(marks) != 0 {
			t.Errorf("read after %d, marked %+v", l.from[0], marks)
		}
	})
}

// Many calls under way: all marked, each once.
func TestRecoverMany(t *testing.T) {
	l := newLog(t)
	l.start()
	want := map[uint64]bool{}
	for i := range 300 {
		d := l.call(fmt.Sprintf("r%d", i%26)) // request ids repeat, as clients may make them
		if i%3 == 0 {
			l.answer(d)
		} else {
			want[d.Seq] = true
		}
	}
	marks := l.recover(time.Now())
	got := map[uint64]bool{}
	for _, m := range marks {
		seq, _ := number(m.Detail["decision_seq"])
		if got[seq] || !want[seq] {
			t.Errorf("decision %d marked twice or wrongly", seq)
		}
		got[seq] = true
	}
	if len(got) != len(want) {
		t.Errorf("%d marked, want %d", len(got), len(want))
	}
	l.env.Verify(t)
}
