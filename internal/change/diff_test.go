package change

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/config"
)

// undiff rebuilds both sides' lines from a LineDiff.
func undiff(d string) (x, y []string) {
	for _, l := range splitLines(d) {
		switch l[:2] {
		case "  ":
			x, y = append(x, l[2:]), append(y, l[2:])
		case "- ":
			x = append(x, l[2:])
		case "+ ":
			y = append(y, l[2:])
		}
	}
	return x, y
}

func TestLineDiff(t *testing.T) {
	d := LineDiff("a\nb\nc\n", "a\nB\nc\nd\n")
	if d != "  a\n- b\n+ B\n  c\n+ d\n" {
		t.Fatalf("diff:\n%s", d)
	}
	if LineDiff("same\n", "same\n") != "  same\n" || LineDiff("", "") != "" {
		t.Fatal("no change must be all kept lines")
	}
}

// The diff is exact: both sides can be rebuilt from it, whatever the input.
func FuzzLineDiff(f *testing.F) {
	f.Add("a\nb\nc", "a\nc\nd")
	f.Add("", "x")
	f.Add("rules:\n  - id: a\n", "rules:\n  - id: b\n  - id: a\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 512 || len(b) > 512 { // the table is lines × lines: keep each run cheap
			return
		}
		x, y := undiff(LineDiff(a, b))
		if !slices.Equal(x, splitLines(a)) || !slices.Equal(y, splitLines(b)) {
			t.Fatalf("diff of %q and %q rebuilds %q and %q", a, b, x, y)
		}
	})
}

func TestSchemaDiff(t *testing.T) {
	before := json.RawMessage(`{"inputSchema":{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}},"required":["id"]}}`)
	after := json.RawMessage(`{"inputSchema":{"type":"object","properties":{"id":{"type":"number"},"to":{"type":"string"}},"required":["id","to"],"additionalProperties":false}}`)
	breaking, other := SchemaDiff(before, after)
	want := []string{"property id: type string → number", "property n removed (arguments carrying it are refused)", "property to now required",
		"additionalProperties: false (unknown arguments are refused)"}
	if !slices.Equal(breaking, want) || !slices.Equal(other, []string{"property to added"}) {
		t.Fatalf("breaking %q, other %q", breaking, other)
	}
	// Back again: only the type change can refuse what was accepted.
	if b, _ := SchemaDiff(after, before); !slices.Equal(b, []string{"property id: type number → string"}) {
		t.Errorf("loosening: %q", b)
	}
}

// Kinds are parsed strictly: a typo is refused, never ignored (it would
// leave changes unreviewed).
func FuzzParseKinds(f *testing.F) {
	for _, s := range []string{"policy", "all", "policy,tool-version", "tool_labels", "", " policy , tool-labels ", "Policy"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ks, err := ParseKinds([]string{s})
		if err != nil {
			if !strings.Contains(err.Error(), "want policy, tool-version, tool-labels, user-roles or all") {
				t.Fatalf("error %v", err)
			}
			return
		}
		for _, w := range strings.Split(s, ",") {
			w = strings.TrimSpace(w)
			if w != "" && w != "all" && !slices.Contains(ks, Kind(w)) {
				t.Fatalf("%q parsed to %v", s, ks)
			}
		}
	})
}

func TestCheckReason(t *testing.T) {
	for _, bad := range []string{"", "   ", strings.Repeat("x", MaxReason+1), "bell\a", "esc\x1b[31m", "bad\xffutf8"} {
		if checkReason("a reason", bad) == nil {
			t.Errorf("reason %q accepted", bad)
		}
	}
	if err := checkReason("a reason", "ticket FIN-7: finance agreed\nsee thread"); err != nil {
		t.Error(err)
	}
}

// The kinds serve accepts (checked in config, which imports nothing of
// ours) are exactly these.
func TestKindsMatchConfig(t *testing.T) {
	var want []string
	for _, k := range Kinds {
		want = append(want, string(k))
	}
	want = append(want, "all")
	got := slices.Clone(config.ReviewKinds)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("config.ReviewKinds %v, change.Kinds + all %v", got, want)
	}
}
