package govern

import (
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/catalog"
)

// DetailEgressHosts lists, on the decision record of a call of a tool
// labelled egress, the hosts its arguments name (URLs and e-mail
// addresses): the destinations it sends to, for the egress alert rule.
// Only host names: never paths, queries, user information or any other
// part of an argument.
const DetailEgressHosts = "egress_hosts"

// Bounds of what is looked at and kept.
const (
	maxEgressHosts   = 16
	maxEgressStrings = 1000
)

var hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}$|^\[?[0-9a-f:.]{2,45}\]?$`)

// noteEgress puts the hosts args names on rec if e is labelled egress.
func noteEgress(rec *audit.Record, e *catalog.Entry, args any) {
	if e == nil || e.Labels == nil || !e.Labels.Egress {
		return
	}
	hosts := EgressHosts(args)
	if len(hosts) > 0 {
		rec.Detail[DetailEgressHosts] = hosts
	}
}

// EgressHosts returns the hosts named by URLs (scheme://host…) and e-mail
// addresses among the string values of v, lower-cased, sorted, at most 16.
func EgressHosts(v any) []string {
	var out []string
	seen := 0
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 32 || seen >= maxEgressStrings {
			return
		}
		switch x := v.(type) {
		case string:
			seen++
			if h := hostIn(x); h != "" && !slices.Contains(out, h) && len(out) < maxEgressHosts {
				out = append(out, h)
			}
		case []any:
			for _, y := range x {
				walk(y, depth+1)
			}
		case map[string]any:
			for _, y := range x {
				walk(y, depth+1)
			}
		}
	}
	walk(v, 0)
	slices.Sort(out)
	return out
}

// hostIn is the host a string names as a URL or an e-mail address, or "".
func hostIn(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2048 {
		return ""
	}
	var h string
	if i := strings.Index(s, "://"); i > 0 {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return ""
		}
		h = u.Hostname()
	} else if strings.Contains(s, "@") {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return ""
		}
		_, h, _ = strings.Cut(a.Address, "@")
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > 253 || !hostRE.MatchString(h) {
		return ""
	}
	return h
}
