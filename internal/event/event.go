// Package event lists the names of every audit event Ostiary records, each
// defined as an Event… constant by the package that records it, so that
// an audit query for a name that no record can carry (a typo such as
// tool-cal) is refused instead of silently finding nothing.
package event

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/gateway"
	"github.com/ostiary/ostiary/internal/govern"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/upstream"
	"github.com/ostiary/ostiary/internal/vault"
	"github.com/ostiary/ostiary/internal/webhook"
)

// names holds every Event… constant of the packages that record audit
// events. A test scans the source for Event… constants and fails when one
// is missing here.
var names = sorted(
	approval.EventRequested, approval.EventDecided, approval.EventExpired, approval.EventUsed, approval.EventList,

	audit.EventSystemInit, audit.EventServerStart, audit.EventServerStop, audit.EventAuthnFailure,
	audit.EventUserCreate, audit.EventUserList, audit.EventUserShow, audit.EventUserDisable, audit.EventUserEnable,
	audit.EventRoleCreate, audit.EventRoleList, audit.EventKeyCreate, audit.EventKeyList, audit.EventKeyRevoke,
	audit.EventAuditQuery, audit.EventWhoami, audit.EventAdminRequest,

	authn.EventAuthnFailures,

	catalog.EventUpstreamAdd, catalog.EventUpstreamRemove, catalog.EventUpstreamList, catalog.EventUpstreamSync,
	catalog.EventToolCreated, catalog.EventToolPending, catalog.EventToolActivated, catalog.EventToolVanished,
	catalog.EventToolReappeared, catalog.EventToolRefused, catalog.EventToolChanged, catalog.EventCatalogList,
	catalog.EventToolVersions, catalog.EventToolTimeout, catalog.EventToolLabels,

	edge.EventRequestRefused, edge.EventRateLimited,

	gateway.EventRequestsRefused, gateway.EventKillBlocked, gateway.EventMethodRefused,

	govern.EventToolsList, govern.EventToolCall, govern.EventToolResult,
	govern.EventPromptsList, govern.EventPromptGet, govern.EventPromptResult, govern.EventCompletion,
	govern.EventResourcesList, govern.EventResourceRead, govern.EventResourceResult,

	killswitch.EventEngage, killswitch.EventRelease, killswitch.EventList,

	policy.EventSet, policy.EventRead, policy.EventExplain, policy.EventRollback,

	upstream.EventSpawn, upstream.EventSecretEcho, upstream.EventCircuitOpen, upstream.EventUpstreamRequest,

	vault.EventSet, vault.EventList, vault.EventAccess, vault.EventRewrap, vault.EventToken, vault.EventInit,

	webhook.EventDelivery,
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
