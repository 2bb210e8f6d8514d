package spec

import "strings"

// HostAllow is the operator's allow-list of hosts a URL-mode elicitation
// may point at: exact host names (or addresses), and *.domain for the
// domain's subdomains (not the domain itself).
type HostAllow struct {
	exact    map[string]bool
	suffixes []string // ".domain"
}

// NewHostAllow compiles an allow-list of hosts as config.ElicitHosts reads
// them from the operator (lower case, "*.domain" for a domain's
// subdomains); nil if it is empty (no list: any host passes the host
// check).
func NewHostAllow(hosts []string) *HostAllow {
	if len(hosts) == 0 {
		return nil
	}
	a := &HostAllow{exact: map[string]bool{}}
	for _, h := range hosts {
		if name, wild := strings.CutPrefix(h, "*."); wild {
			a.suffixes = append(a.suffixes, "."+name)
		} else {
			a.exact[h] = true
		}
	}
	return a
}

// Allows reports whether host (lower case, as upstream.Gate reads it from
// an elicitation's URL) is on the list.
func (a *HostAllow) Allows(host string) bool {
	if a == nil {
		return true
	}
	if a.exact[host] {
		return true
	}
	for _, s := range a.suffixes {
		if strings.HasSuffix(host, s) && len(host) > len(s) {
			return true
		}
	}
	return false
}
