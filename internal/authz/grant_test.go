package authz

import (
	"strings"
	"testing"
)

func TestParseGrant(t *testing.T) {
	ok := map[string]Grant{
		"invoke:finance.*":     {Invoke, "finance.*"},
		"discover:*":           {Discover, "*"},
		"approve:hr.?ay":       {Approve, "hr.?ay"},
		"admin:*":              {Admin, "*"},
		"read-audit:*":         {ReadAudit, "*"},
		"manage-tools:gh/repo": {ManageTools, "gh/repo"},
	}
	for in, want := range ok {
		g, err := ParseGrant(in)
		if err != nil || g != want {
			t.Errorf("ParseGrant(%q) = %v, %v; want %v", in, g, err, want)
		}
		if g.String() != in {
			t.Errorf("String() = %q, want %q", g.String(), in)
		}
	}
	bad := map[string]string{
		"invoke":               "ACTION:RESOURCE",
		"Invoke:x":             "unknown action",
		"fly:x":                "unknown action",
		"invoke:":              "empty resource",
		"invoke:a b":           "letters, digits",
		"invoke:a\x00":         "letters, digits",
		"read-audit:finance.*": "whole system",
		"admin:x":              "whole system",
		"invoke:" + strings.Repeat("a", MaxResourceLen+1): "longer than",
	}
	for in, want := range bad {
		_, err := ParseGrant(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseGrant(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"*", "finance.pay_invoice", true},
		{"finance.*", "finance.pay_invoice", true},
		{"finance.*", "finance.", true},
		{"finance.*", "finance", false},
		{"finance.*", "Finance.pay", false}, // case-sensitive
		{"finance.*", "xfinance.pay", false},
		{"*.read", "github.issues.read", true},
		{"*.read", "github.issues.reader", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"exact", "exact", true},
		{"exact", "exact2", false},
		{"**", "anything", true},
	}
	for _, c := range cases {
		if got := Match(c.p, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func TestContains(t *testing.T) {
	cases := []struct {
		p, q string
		want bool
	}{
		{"*", "finance.*", true},
		{"finance.*", "finance.pay*", true},
		{"finance.*", "finance.pay_invoice", true},
		{"finance.pay*", "finance.*", false},
		{"a?", "a*", false}, // '?' is one character, 'a*' includes "abc"
		{"a?", "a?", true},
		{"a*", "a?", true},
		{"a?c", "abc", true},
		{"abc", "a?c", false},
		{"*b", "*", false},
		{"x.*", "y.*", false},
	}
	for _, c := range cases {
		if got := Contains(c.p, c.q); got != c.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", c.p, c.q, got, c.want)
		}
	}
}

func TestGrantsAllows(t *testing.T) {
	gs := mustGrants(t, "invoke:finance.*", "discover:hr.*", "read-audit:*")
	cases := []struct {
		a    Action
		r    string
		want bool
	}{
		{Invoke, "finance.pay", true},
		{Discover, "finance.pay", true}, // invoke implies discover
		{Discover, "hr.people", true},
		{Invoke, "hr.people", false}, // discover does not imply invoke
		{ReadAudit, All, true},
		{Approve, "finance.pay", false},
		{ManageIdentities, All, false},
	}
	for _, c := range cases {
		if got := gs.Allows(c.a, c.r); got != c.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", c.a, c.r, got, c.want)
		}
	}
	admin := mustGrants(t, "admin:*")
	for _, a := range Actions() {
		if !admin.Allows(Action(a), "any.tool") {
			t.Errorf("admin does not allow %s", a)
		}
	}
	if (Grants{}).Allows(Discover, "x") {
		t.Error("empty grants allow something")
	}
}

// Effective permission is roles ∩ scope.
func TestPermissionsIntersect(t *testing.T) {
	p := Permissions{
		Roles: mustGrants(t, "invoke:finance.*", "read-audit:*"),
		Scope: mustGrants(t, "discover:finance.*", "invoke:hr.*"),
	}
	cases := []struct {
		a    Action
		r    string
		want bool
	}{
		{Discover, "finance.pay", true},  // both
		{Invoke, "finance.pay", false},   // scope only discovers
		{Invoke, "hr.people", false},     // roles lack it
		{ReadAudit, All, false},          // scope lacks it
		{Discover, "other.tool", false},  // neither
		{Discover, "finance.read", true}, // both
	}
	for _, c := range cases {
		if got := p.Allows(c.a, c.r); got != c.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", c.a, c.r, got, c.want)
		}
	}
	unscoped := Permissions{Roles: p.Roles}
	if !unscoped.Allows(ReadAudit, All) {
		t.Error("unscoped key lost its roles' grant")
	}
	empty := Permissions{Roles: p.Roles, Scope: Grants{}}
	if empty.Allows(Discover, "finance.pay") {
		t.Error("a key scoped to nothing allows something")
	}
}

func TestCovers(t *testing.T) {
	user := Permissions{Roles: mustGrants(t, "invoke:finance.*", "approve:hr.*")}
	for _, s := range []string{"invoke:finance.pay", "discover:finance.*", "approve:hr.*", "invoke:finance.*"} {
		if !user.Covers(mustGrants(t, s)[0]) {
			t.Errorf("%s not covered", s)
		}
	}
	for _, s := range []string{"invoke:*", "admin:*", "approve:finance.*", "invoke:hr.x", "manage-identities:*"} {
		if user.Covers(mustGrants(t, s)[0]) {
			t.Errorf("%s covered", s)
		}
	}
	if g, ok := mustGrants(t, "admin:*").CoversAll(mustGrants(t, "invoke:*", "manage-secrets:*")); !ok {
		t.Errorf("admin does not cover %v", g)
	}
}

func mustGrants(t *testing.T, ss ...string) Grants {
	t.Helper()
	gs, err := ParseGrants(ss)
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

func FuzzParseGrant(f *testing.F) {
	for _, s := range []string{"invoke:finance.*", "admin:*", "x", ":", "discover:a?b*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGrant(s)
		if err != nil {
			return
		}
		again, err := ParseGrant(g.String())
		if err != nil || again != g {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

// Soundness of Contains: whenever it says p contains q, every name that q
// matches is matched by p. Names are built from q by expanding its wildcards.
func FuzzContains(f *testing.F) {
	f.Add("fin*", "fin?x*", "ab")
	f.Add("a?", "a*", "bc")
	f.Fuzz(func(t *testing.T, p, q, fill string) {
		if validResource(p) != nil || validResource(q) != nil || validResource(fill) != nil {
			return
		}
		if !Contains(p, q) {
			return
		}
		for _, n := range []int{0, 1, len(fill)} {
			var b strings.Builder
			for i := 0; i < len(q); i++ {
				switch q[i] {
				case '*':
					b.WriteString(fill[:n])
				case '?':
					b.WriteByte('x')
				default:
					b.WriteByte(q[i])
				}
			}
			name := b.String()
			if Match(q, name) && !Match(p, name) {
				t.Fatalf("Contains(%q, %q) but %q matches only q", p, q, name)
			}
		}
	})
}
