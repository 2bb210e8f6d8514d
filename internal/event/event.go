// Package event lists the names of every audit event Ostiary records, each
// defined as an Event… constant by the package that records it, so that
// an audit query for a name that no record can carry (a typo such as
// tool-cal) is refused instead of silently finding nothing.
package event

import (
	"fmt"
	"slices"
	"strings"
)

// names holds the value of every Event… constant of the packages that
// record audit events, as plain strings: this package imports none of
// them, so whatever checks an event name (the admin API, the CLI) takes on
// no dependency on what records it. TestNamesAreComplete scans the source
// for Event… constants and fails when one is missing here or a name here
// is defined nowhere.
var names = sorted(
	"admin-request", "alert-acknowledged", "alert-delivered", "alert-escalated", "alert-feed-dropped", "alert-list", "alert-raised",
	"approval-decided", "approval-expired", "approval-list", "approval-requested",
	"approval-used", "audit-query", "audit-search-token", "authn-failure", "authn-failures", "catalog-list", "change-not-applied",
	"completion", "evidence-export", "idp-link", "idp-link-list", "idp-map", "idp-mapping-list", "idp-unmap", "idp-user-provision", "key-create", "key-list", "key-revoke", "killswitch-block", "killswitch-engage",
	"killswitch-list", "killswitch-release", "method-refused", "policy-explain", "policy-read", "policy-rolled-back",
	"policy-set", "prompt-get", "prompt-result", "proposal-applied", "proposal-approved", "proposal-created", "proposal-read", "proposal-rejected", "proposal-superseded", "proposal-withdrawn", "prompts-list", "rate-limited", "request-refused",
	"requests-refused", "resource-read", "resource-result", "resources-list", "role-create", "role-list",
	"completion", "export-failing", "export-resumed", "idp-link", "idp-link-list", "idp-map", "idp-mapping-list", "idp-unmap", "idp-user-provision", "key-create", "key-list", "key-revoke", "killswitch-block", "killswitch-engage",
	"killswitch-list", "killswitch-release", "method-refused", "policy-explain", "policy-read", "policy-rolled-back",
	"policy-set", "prompt-get", "prompt-result", "prompts-list", "rate-limited", "request-refused",
	"requests-refused", "resource-read", "resource-result", "resources-list", "review-attest", "review-item-overdue", "review-list", "review-show", "review-start",
	"role-create", "role-list",
	"secret-access", "secret-compromised", "secret-echo-redacted", "secret-list", "secret-rotation-overdue", "secret-set", "server-start", "server-stop",
	"system-init", "tool-call", "tool-definition-changed", "tool-labels-set", "tool-reappeared",
	"token-exchange", "tool-refused", "tool-result", "tool-timeout-set", "tool-vanished", "tool-version-activated",
	"tool-version-created", "tool-version-pending", "tool-versions", "tools-list", "upstream-add",
	"upstream-circuit-open", "upstream-document-set", "upstream-list", "upstream-remove", "upstream-request", "upstream-spawn",
	"upstream-sync", "user-console-password-set", "user-create", "user-disable", "user-enable", "user-list", "user-roles-set", "user-show", "vault-init",
	"vault-rekey", "vault-rewrap", "webhook-delivery", "whoami",
)

func sorted(ns ...string) []string {
	slices.Sort(ns)
	return slices.Compact(ns)
}

// Names returns every event name, sorted.
func Names() []string { return slices.Clone(names) }

// Known reports whether name is an event Ostiary records.
func Known(name string) bool {
	_, ok := slices.BinarySearch(names, name)
	return ok
}

// Check returns nil for a known event name, else an error that suggests
// the nearest names and lists them all.
func Check(name string) error {
	if Known(name) {
		return nil
	}
	var near []string
	for _, n := range names {
		if distance(name, n) <= 2 || (len(name) >= 3 && strings.HasPrefix(n, name)) {
			near = append(near, n)
		}
	}
	hint := ""
	if len(near) > 0 {
		hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(near, " or "))
	}
	return fmt.Errorf("unknown event %q%s; the events are: %s", name, hint, strings.Join(names, ", "))
}

// distance is the Levenshtein distance of a and b, in bytes (event names
// are ASCII).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
