// Package authz decides what a principal may do. Everything here is a pure
// function of data: grants in, a yes or no out.
//
// A grant is ACTION:RESOURCE, where RESOURCE is a glob over tool names
// ('*' matches any run of characters, '?' exactly one). Roles are sets of
// grants; a request's effective permission is its user's roles intersected
// with its key's scope (if the key has one).
package authz

import (
	"fmt"
	"strings"
)

// Action is a kind of permission.
type Action string

const (
	Discover          Action = "discover"
	Invoke            Action = "invoke" // implies Discover
	ManageTools       Action = "manage-tools"
	Approve           Action = "approve"
	ReadAudit         Action = "read-audit"
	ManageIdentities  Action = "manage-identities"
	ManageSecrets     Action = "manage-secrets"
	OperateKillswitch Action = "operate-killswitch"
	ManagePolicy      Action = "manage-policy"
	Admin             Action = "admin" // implies everything
)

// actions lists every action and whether its resource is a tool glob
// (true) or the whole system (false, resource must be "*").
var actions = map[Action]bool{
	Discover:          true,
	Invoke:            true,
	ManageTools:       true,
	Approve:           true,
	OperateKillswitch: true,
	ReadAudit:         false,
	ManageIdentities:  false,
	ManageSecrets:     false,
	ManagePolicy:      false,
	Admin:             false,
}

// Actions returns every known action name, for help texts.
func Actions() []string {
	return []string{string(Discover), string(Invoke), string(ManageTools), string(Approve),
		string(ReadAudit), string(ManageIdentities), string(ManageSecrets),
		string(OperateKillswitch), string(ManagePolicy), string(Admin)}
}

// All is the resource that stands for everything.
const All = "*"

// MaxResourceLen bounds a grant's resource pattern.
const MaxResourceLen = 200

// Grant permits Action on every resource matching the glob Resource.
type Grant struct {
	Action   Action
	Resource string
}

func (g Grant) String() string { return string(g.Action) + ":" + g.Resource }

// ParseGrant parses "ACTION:RESOURCE". Errors are safe to show a client.
func ParseGrant(s string) (Grant, error) {
	a, r, ok := strings.Cut(s, ":")
	if !ok {
		return Grant{}, fmt.Errorf("grant %q: want ACTION:RESOURCE, e.g. invoke:finance.*", clip(s))
	}
	tool, known := actions[Action(a)]
	if !known {
		return Grant{}, fmt.Errorf("grant %q: unknown action %q (known: %s)", clip(s), clip(a), strings.Join(Actions(), ", "))
	}
	if err := validResource(r); err != nil {
		return Grant{}, fmt.Errorf("grant %q: %v", clip(s), err)
	}
	if !tool && r != All {
		return Grant{}, fmt.Errorf("grant %q: action %s applies to the whole system; write %s:*", clip(s), a, a)
	}
	return Grant{Action: Action(a), Resource: r}, nil
}

// ParseGrants parses each string with ParseGrant, dropping exact duplicates.
func ParseGrants(ss []string) (Grants, error) {
	out := make(Grants, 0, len(ss))
	seen := map[Grant]bool{}
	for _, s := range ss {
		g, err := ParseGrant(s)
		if err != nil {
			return nil, err
		}
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out, nil
}

func validResource(r string) error {
	if r == "" {
		return fmt.Errorf("empty resource")
	}
	if len(r) > MaxResourceLen {
		return fmt.Errorf("resource longer than %d characters", MaxResourceLen)
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '/' || c == '*' || c == '?'
		if !ok {
			return fmt.Errorf("resource may hold only letters, digits and . _ - / * ?")
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// implies reports whether holding action have grants action want.
func implies(have, want Action) bool {
	return have == want || have == Admin || (have == Invoke && want == Discover)
}

// Grants is a set of grants: it permits what any member permits.
type Grants []Grant

// Allows reports whether some grant permits action on resource (a concrete
// name, not a pattern).
func (gs Grants) Allows(a Action, resource string) bool {
	for _, g := range gs {
		if implies(g.Action, a) && Match(g.Resource, resource) {
			return true
		}
	}
	return false
}

// Covers reports whether gs permits everything that g permits. The check is
// sound (a true answer is always right) but may say false for exotic glob
// combinations that happen to be covered.
func (gs Grants) Covers(g Grant) bool {
	for _, h := range gs {
		if implies(h.Action, g.Action) && Contains(h.Resource, g.Resource) {
			return true
		}
	}
	return false
}

// CoversAll reports whether gs covers every grant of other, and returns the
// first one it does not.
func (gs Grants) CoversAll(other Grants) (Grant, bool) {
	for _, g := range other {
		if !gs.Covers(g) {
			return g, false
		}
	}
	return Grant{}, true
}

// Strings renders the grants as ACTION:RESOURCE texts.
func (gs Grants) Strings() []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return out
}

// Permissions is a request's effective permission: what its roles grant,
// narrowed by its key's scope when the key has one.
type Permissions struct {
	Roles Grants
	Scope Grants // nil: the key is not scoped
}

// Allows reports whether both the roles and (if set) the scope permit action
// on resource.
func (p Permissions) Allows(a Action, resource string) bool {
	if !p.Roles.Allows(a, resource) {
		return false
	}
	return p.Scope == nil || p.Scope.Allows(a, resource)
}

// Covers reports whether p permits everything g permits.
func (p Permissions) Covers(g Grant) bool {
	return p.Roles.Covers(g) && (p.Scope == nil || p.Scope.Covers(g))
}

// CoversAll is Covers over a set, returning the first grant not covered.
func (p Permissions) CoversAll(gs Grants) (Grant, bool) {
	for _, g := range gs {
		if !p.Covers(g) {
			return g, false
		}
	}
	return Grant{}, true
}
