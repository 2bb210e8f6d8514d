package change

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/policy"
)

// ReplayReport is what the replay gate found: the tool-call decisions of
// the audit log in a window, re-evaluated under the proposed policy.
//
// The log keeps a call's arguments only as a SHA-256 digest, and a user's
// session history (data classes touched) only in memory; labels, roles
// and keys may have changed since. So each recorded decision is first
// re-evaluated under the policy version that made it, from what is known
// now (user's roles and service flag, the key's environment and scope, the
// tool's current labels and hints, the recorded time, no arguments, no
// session history): only a decision reproduced that way is replayed under
// the proposal, and compared with what was recorded. The others are
// counted as unreproducible, by cause, never guessed.
type ReplayReport struct {
	Since          time.Time                 `json:"since"`
	Until          time.Time                 `json:"until"`
	Considered     int                       `json:"considered"` // decisions read from the log
	Truncated      bool                      `json:"truncated"`  // the bound on count was hit: older ones were not read
	Replayed       int                       `json:"replayed"`
	Unchanged      int                       `json:"unchanged"`
	Changed        map[string]int            `json:"changed"` // "allow→approve": count
	ByTool         map[string]map[string]int `json:"by_tool"`
	ByUser         map[string]map[string]int `json:"by_user"`
	Loosened       int                       `json:"loosened"` // changes towards allow
	Unreproducible map[string]int            `json:"unreproducible"`
	Examples       []ReplayExample           `json:"examples"`
}

// ReplayExample is one recorded decision the proposal would change.
type ReplayExample struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	Tool    string    `json:"tool"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Reasons []string  `json:"reasons"` // the proposal's reasons
}

// Unreproducible causes.
const (
	CauseToolGone   = "tool-not-in-catalog"
	CauseUserGone   = "user-unknown"
	CausePolicyGone = "policy-version-unavailable"
	CauseDiffers    = "not-reproduced-from-known-facts" // arguments, session history, labels or roles mattered
)

// examplesPer bounds the examples kept per transition.
const examplesPer = 3

// Facts reconstruct what a recorded decision was made on, as far as it is
// known now; ok false with a cause when it cannot be.
type Facts func(rec *audit.Record) (in policy.Input, cause string)

// Replay re-evaluates recorded tool-call decisions under proposed. own
// compiles a stored policy version (nil if it is gone). It is pure: the
// records, the facts and the policies are its whole input.
func Replay(recs []audit.Record, facts Facts, own func(version int) *policy.Policy, proposed *policy.Policy) ReplayReport {
	rep := ReplayReport{Changed: map[string]int{}, ByTool: map[string]map[string]int{}, ByUser: map[string]map[string]int{},
		Unreproducible: map[string]int{}, Examples: []ReplayExample{}}
	perChange := map[string]int{}
	for i := range recs {
		rec := &recs[i]
		recorded, _ := rec.Detail["decision"].(string)
		if recorded == "" {
			continue // refused before the policy was asked
		}
		rep.Considered++
		in, cause := facts(rec)
		if cause != "" {
			rep.Unreproducible[cause]++
			continue
		}
		pol := own(detailInt(rec.Detail["policy_version"]))
		if pol == nil {
			rep.Unreproducible[CausePolicyGone]++
			continue
		}
		if string(pol.Evaluate(in).Effect) != recorded {
			rep.Unreproducible[CauseDiffers]++
			continue
		}
		rep.Replayed++
		d := proposed.Evaluate(in)
		if string(d.Effect) == recorded {
			rep.Unchanged++
			continue
		}
		key := recorded + "→" + string(d.Effect)
		rep.Changed[key]++
		bump(rep.ByTool, in.Tool.Name, key)
		bump(rep.ByUser, in.User, key)
		if strictness(string(d.Effect)) < strictness(recorded) {
			rep.Loosened++
		}
		if perChange[key] < examplesPer {
			perChange[key]++
			rep.Examples = append(rep.Examples, ReplayExample{Seq: rec.Seq, Time: rec.Time, User: in.User, Tool: in.Tool.Name,
				From: recorded, To: string(d.Effect), Reasons: d.Reasons})
		}
	}
	return rep
}

func bump(m map[string]map[string]int, k, change string) {
	if m[k] == nil {
		m[k] = map[string]int{}
	}
	m[k][change]++
}

func strictness(effect string) int {
	switch effect {
	case string(policy.Allow):
		return 0
	case string(policy.Approve):
		return 1
	}
	return 2
}

// Summary is the report in one line.
func (r ReplayReport) Summary() string {
	if r.Considered == 0 {
		return "no recorded tool-call decisions in the window"
	}
	var ch []string
	for _, k := range sortedKeys(r.Changed) {
		ch = append(ch, fmt.Sprintf("%s %d", k, r.Changed[k]))
	}
	s := fmt.Sprintf("%d recorded decisions, %d replayed: %d unchanged", r.Considered, r.Replayed, r.Unchanged)
	if len(ch) > 0 {
		s += ", changed " + strings.Join(ch, ", ")
	}
	if n := r.Considered - r.Replayed; n > 0 {
		s += fmt.Sprintf("; %d not reproducible from what the log keeps", n)
	}
	if r.Truncated {
		s += " (bounded: older decisions not read)"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// detailInt reads a number from a record's detail (json.Number once
// parsed back from the index, an int when built in memory).
func detailInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case uint64:
		return int(x)
	case float64:
		return int(x)
	case json.Number:
		n, _ := strconv.Atoi(string(x))
		return n
	}
	return 0
}
