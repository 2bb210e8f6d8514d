package change

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/ostiary/ostiary/internal/policy"
)

// maxDiffCells bounds the line diff's table (lines before × lines after);
// beyond it the diff shows every line removed and added.
const maxDiffCells = 4 << 20

// LineDiff is a unified-style diff of a and b: every line prefixed with
// "  " (kept), "- " (removed) or "+ " (added). It is exact: applying it to
// a gives b.
func LineDiff(a, b string) string {
	x, y := splitLines(a), splitLines(b)
	var out strings.Builder
	if len(x)*len(y) > maxDiffCells {
		for _, l := range x {
			out.WriteString("- " + l + "\n")
		}
		for _, l := range y {
			out.WriteString("+ " + l + "\n")
		}
		return out.String()
	}
	// lcs[i][j]: the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int32, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			out.WriteString("- " + x[i] + "\n")
			i++
		default:
			out.WriteString("+ " + y[j] + "\n")
			j++
		}
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// RuleDiff names the rules a policy change adds, removes or changes (by
// id), and the document settings it changes.
func RuleDiff(before, after *policy.Policy) []string {
	var out []string
	index := func(p *policy.Policy) map[string]policy.Rule {
		m := map[string]policy.Rule{}
		for _, r := range p.Doc.Rules {
			m[r.ID] = r
		}
		return m
	}
	b, a := index(before), index(after)
	for _, r := range after.Doc.Rules {
		old, ok := b[r.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("rule %s added (%s when %s)", r.ID, r.Decision, clip(r.When, 120)))
		case !reflect.DeepEqual(old, r):
			what := []string{}
			if old.Decision != r.Decision {
				what = append(what, fmt.Sprintf("decision %s → %s", old.Decision, r.Decision))
			}
			if old.When != r.When {
				what = append(what, fmt.Sprintf("when %q → %q", clip(old.When, 120), clip(r.When, 120)))
			}
			if len(what) == 0 {
				what = append(what, "other fields")
			}
			out = append(out, fmt.Sprintf("rule %s changed: %s", r.ID, strings.Join(what, "; ")))
		}
	}
	for _, r := range before.Doc.Rules {
		if _, ok := a[r.ID]; !ok {
			out = append(out, fmt.Sprintf("rule %s removed (was %s when %s)", r.ID, r.Decision, clip(r.When, 120)))
		}
	}
	if !reflect.DeepEqual(before.Doc.Approval, after.Doc.Approval) || !reflect.DeepEqual(before.Doc.Session, after.Doc.Session) {
		out = append(out, "approval or session settings changed")
	}
	if len(before.Doc.Tests) != len(after.Doc.Tests) {
		out = append(out, fmt.Sprintf("tests: %d → %d", len(before.Doc.Tests), len(after.Doc.Tests)))
	}
	return out
}

// schema is what SchemaDiff reads of a tool definition's input schema.
type schema struct {
	props    map[string]string // property → its declared type ("" if none)
	required []string
	closed   bool // additionalProperties: false
}

func readSchema(def json.RawMessage) schema {
	var d struct {
		InputSchema struct {
			Properties           map[string]map[string]any `json:"properties"`
			Required             []string                  `json:"required"`
			AdditionalProperties any                       `json:"additionalProperties"`
		} `json:"inputSchema"`
	}
	_ = json.Unmarshal(def, &d)
	s := schema{props: map[string]string{}, required: d.InputSchema.Required, closed: d.InputSchema.AdditionalProperties == false}
	for k, v := range d.InputSchema.Properties {
		s.props[k] = fmt.Sprint(v["type"])
		if v["type"] == nil {
			s.props[k] = ""
		}
	}
	return s
}

// SchemaDiff compares two tool definitions' input schemas: breaking lists
// what can refuse arguments the old schema accepted (a property removed
// from a closed schema, a new required property, a changed type, a schema
// closed), other what cannot.
func SchemaDiff(before, after json.RawMessage) (breaking, other []string) {
	b, a := readSchema(before), readSchema(after)
	names := func(m map[string]string) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for _, k := range names(a.props) {
		old, ok := b.props[k]
		switch {
		case !ok:
			other = append(other, "property "+k+" added")
		case old != a.props[k]:
			breaking = append(breaking, fmt.Sprintf("property %s: type %s → %s", k, dash(old), dash(a.props[k])))
		}
	}
	for _, k := range names(b.props) {
		if _, ok := a.props[k]; !ok {
			if a.closed {
				breaking = append(breaking, "property "+k+" removed (arguments carrying it are refused)")
			} else {
				other = append(other, "property "+k+" removed")
			}
		}
	}
	for _, k := range a.required {
		if !slices.Contains(b.required, k) {
			breaking = append(breaking, "property "+k+" now required")
		}
	}
	for _, k := range b.required {
		if !slices.Contains(a.required, k) {
			other = append(other, "property "+k+" no longer required")
		}
	}
	if a.closed && !b.closed {
		breaking = append(breaking, "additionalProperties: false (unknown arguments are refused)")
	}
	return breaking, other
}

func dash(s string) string {
	if s == "" {
		return "(any)"
	}
	return s
}

// prettyJSON indents raw for a line diff.
func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(raw)
	}
	return string(b)
}
