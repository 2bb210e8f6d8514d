package alert

import (
	"fmt"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/lru"
)

// The audit events the rules read (the names their packages record).
const (
	eventToolCall   = "tool-call"
	eventToolResult = "tool-result"
	eventSecretEcho = "secret-echo-redacted"
)

// DetailEgressHosts is the detail member of a tool-call record that lists
// the hosts found in an egress tool's arguments (govern puts it there).
const DetailEgressHosts = "egress_hosts"

// Bounds of the engine's memory.
const (
	maxSeries  = 50_000  // subjects counted per rule, least recently seen dropped
	maxSeen    = 200_000 // first uses and hosts remembered in memory (the store has them all)
	maxBuckets = 1000    // per series
)

// Finding is an alert the rules raise from a record. Its text and facts
// name rules, tools, upstreams, users, key ids and hosts: never argument
// values or secrets.
type Finding struct {
	Rule    string
	Kind    string
	Subject string // what it is about: tool:T, upstream:U, user:U, key:K, host:H
	Tool    string // the tool whose owner is told ("" : the default route)
	Summary string
	Facts   map[string]any
	At      time.Time
	// Seen, for first-use and egress, is what must be remembered as seen
	// once the alert is raised (rule, subject, object).
	Seen *SeenKey
}

// SeenKey is a pair a first-use or egress rule has seen.
type SeenKey struct{ Rule, Subject, Object string }

func (k SeenKey) String() string { return k.Rule + "\x00" + k.Subject + "\x00" + k.Object }

// Engine evaluates the rules over records, in seq order. It is not safe
// for concurrent use: one goroutine feeds it. Spike and volume rules stay
// quiet until they have watched one baseline span since the engine
// started (their memory starts empty); a subject first seen after that
// has an empty baseline, so its window needs only min events.
type Engine struct {
	doc       *Document
	isService func(user string) bool
	started   time.Time
	series    map[string]*lru.Map[string, *series] // by rule name
	quiet     *lru.Map[string, time.Time]          // rule+subject → end of its cooldown
	seen      *lru.Map[string, struct{}]
}

// NewEngine returns an engine for doc. isService tells whether a user is a
// service account (off-hours rules).
func NewEngine(doc *Document, isService func(user string) bool) *Engine {
	e := &Engine{doc: doc, isService: isService, series: map[string]*lru.Map[string, *series]{},
		quiet: lru.New[string, time.Time](maxSeries), seen: lru.New[string, struct{}](maxSeen)}
	for _, r := range doc.Rules {
		e.series[r.Name] = lru.New[string, *series](maxSeries)
	}
	return e
}

// Remember marks k as seen (loaded from the store, or just raised).
func (e *Engine) Remember(k SeenKey) { e.seen.Put(k.String(), struct{}{}) }

// Known reports whether k is remembered as seen.
func (e *Engine) Known(k SeenKey) bool {
	_, ok := e.seen.Get(k.String())
	return ok
}

// Observe returns the findings r raises.
func (e *Engine) Observe(r *audit.Record) []Finding {
	if e.started.IsZero() {
		e.started = r.Time
	}
	var out []Finding
	for i := range e.doc.Rules {
		rule := &e.doc.Rules[i]
		for _, f := range e.apply(rule, r) {
			key := rule.Name + "\x00" + f.Subject
			if until, ok := e.quiet.Get(key); ok && r.Time.Before(until) {
				continue
			}
			if f.Seen == nil { // seen pairs are quiet for good once raised
				e.quiet.Put(key, r.Time.Add(time.Duration(rule.Cooldown)))
			}
			f.Rule, f.Kind, f.At = rule.Name, rule.Kind, r.Time
			out = append(out, f)
		}
	}
	return out
}

func tool(r *audit.Record) string {
	name, _ := strings.CutPrefix(r.Target, "tool:")
	return name
}

func str(v any) string { s, _ := v.(string); return s }

func (e *Engine) apply(rule *Rule, r *audit.Record) []Finding {
	t := tool(r)
	if !strings.HasPrefix(r.Target, "tool:") || !matches(rule.Tools, t) {
		return nil
	}
	call := r.Event == eventToolCall
	switch rule.Kind {
	case KindDenialSpike:
		return e.spike(rule, r, call && r.Outcome == audit.Denied, "denied calls")
	case KindExceptionSpike:
		return e.spike(rule, r, r.Event == eventToolResult && r.Outcome == audit.Failed, "failed calls")
	case KindVolume:
		return e.spike(rule, r, call && r.KeyID != "", "calls")
	case KindFirstUse:
		if !call || r.Outcome != audit.Success || r.Actor == "" {
			return nil
		}
		k := SeenKey{rule.Name, "user:" + r.Actor, "tool:" + t}
		if e.Known(k) {
			return nil
		}
		e.Remember(k)
		return []Finding{{Subject: "user:" + r.Actor + " tool:" + t, Tool: t, Seen: &k,
			Summary: fmt.Sprintf("%s called %s for the first time", r.Actor, t),
			Facts:   map[string]any{"user": r.Actor, "tool": t, "request_id": r.RequestID}}}
	case KindEgress:
		if !call || r.Outcome != audit.Success {
			return nil
		}
		var out []Finding
		for _, h := range hosts(r.Detail[DetailEgressHosts]) {
			k := SeenKey{rule.Name, "", "host:" + h}
			if e.Known(k) {
				continue
			}
			e.Remember(k) // once per host even if it appears twice in this call
			out = append(out, Finding{Subject: "host:" + h, Tool: t, Seen: &k,
				Summary: fmt.Sprintf("new egress destination %s, sent to by %s through %s", h, r.Actor, t),
				Facts:   map[string]any{"host": h, "tool": t, "user": r.Actor, "request_id": r.RequestID}})
		}
		return out
	case KindSecretEcho:
		if r.Event != eventSecretEcho {
			return nil
		}
		n := 0
		if s, ok := r.Detail["secrets"].([]any); ok {
			n = len(s)
		}
		up := str(r.Detail["upstream"])
		return []Finding{{Subject: "tool:" + t, Tool: t,
			Summary: fmt.Sprintf("upstream %s echoed %d injected secret(s) in an answer to %s's call of %s; redacted before it left", up, n, r.Actor, t),
			Facts:   map[string]any{"tool": t, "upstream": up, "user": r.Actor, "secrets": n, "request_id": r.RequestID}}}
	case KindOffHours:
		if !call || r.Actor == "" || rule.working(r.Time) || e.isService == nil || !e.isService(r.Actor) {
			return nil
		}
		return []Finding{{Subject: "user:" + r.Actor, Tool: t,
			Summary: fmt.Sprintf("service account %s called %s at %s, outside its hours (%s %s %s)", r.Actor, t,
				r.Time.In(rule.loc).Format("Mon 15:04"), strings.Join(rule.Days, ","), rule.Hours, rule.loc),
			Facts: map[string]any{"user": r.Actor, "tool": t, "request_id": r.RequestID}}}
	}
	return nil
}

func matches(globs []string, name string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if authz.Match(g, name) {
			return true
		}
	}
	return false
}

// hosts reads the egress_hosts detail ([]string as written, []any as read
// back).
func hosts(v any) []string {
	switch hs := v.(type) {
	case []string:
		return hs
	case []any:
		out := make([]string, 0, len(hs))
		for _, h := range hs {
			if s, ok := h.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// spike counts r (if hit) for its subject and reports a spike.
func (e *Engine) spike(rule *Rule, r *audit.Record, hit bool, what string) []Finding {
	if !hit {
		return nil
	}
	var subject string
	switch {
	case rule.Kind == KindVolume:
		subject = "key:" + r.KeyID
	case rule.By == "tool":
		subject = "tool:" + tool(r)
	case rule.By == "upstream":
		subject = "upstream:" + str(r.Detail["upstream"])
	default:
		subject = "user:" + r.Actor
	}
	w, b := time.Duration(rule.Window), time.Duration(rule.Baseline)
	s := e.series[rule.Name].GetOrAdd(subject, func() *series { return newSeries(w, b) })
	s.add(r.Time)
	if r.Time.Sub(e.started) < b {
		return nil // still learning what normal is
	}
	cur, base := s.counts(r.Time)
	expected := float64(base) * float64(w) / float64(b)
	if cur < rule.Min || float64(cur) <= rule.Factor*expected {
		return nil
	}
	f := Finding{Subject: subject, Facts: map[string]any{"count": cur, "window": w.String(), "baseline_count": base,
		"baseline": b.String(), "expected": fmt.Sprintf("%.1f", expected)}}
	if strings.HasPrefix(subject, "tool:") {
		f.Tool = tool(r)
	}
	f.Summary = fmt.Sprintf("%d %s for %s in the last %s; its baseline predicts %.1f (%d in the %s before)", cur, what, subject, w, expected, base, b)
	return []Finding{f}
}

// series counts events in buckets over window+baseline.
type series struct {
	width time.Duration
	w, b  time.Duration
	start []int64 // bucket index (unix ns / width), ascending
	n     []int
}

func newSeries(w, b time.Duration) *series {
	width := max(w/10, (w+b)/maxBuckets, time.Millisecond)
	return &series{width: width, w: w, b: b}
}

func (s *series) add(t time.Time) {
	i := t.UnixNano() / int64(s.width)
	if k := len(s.start); k > 0 && s.start[k-1] >= i {
		s.n[k-1]++ // same bucket (or a record out of order: counted in the latest)
	} else {
		s.start, s.n = append(s.start, i), append(s.n, 1)
	}
	oldest := t.Add(-s.w-s.b).UnixNano() / int64(s.width)
	drop := 0
	for drop < len(s.start) && s.start[drop] < oldest {
		drop++
	}
	s.start, s.n = s.start[drop:], s.n[drop:]
}

// counts returns the events in the window ending at t and in the
// baseline span before it.
func (s *series) counts(t time.Time) (cur, base int) {
	edge := t.Add(-s.w).UnixNano() / int64(s.width)
	for i, st := range s.start {
		if st > edge {
			cur += s.n[i]
		} else {
			base += s.n[i]
		}
	}
	return cur, base
}
