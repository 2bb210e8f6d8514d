package spec

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// HostAllow is the operator's allow-list of hosts a URL-mode elicitation
// may point at: exact host names (or addresses), and *.domain for the
// domain's subdomains (not the domain itself).
type HostAllow struct {
	exact    map[string]bool
	suffixes []string // ".domain"
}

// NewHostAllow compiles an allow-list; nil if it is empty (no list: any
// host passes the host check).
func NewHostAllow(hosts []string) (*HostAllow, error) {
	if len(hosts) == 0 {
		return nil, nil
	}
	a := &HostAllow{exact: map[string]bool{}}
	for _, h := range hosts {
		name, wild := strings.CutPrefix(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."), "*.")
		name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
		_, ipErr := netip.ParseAddr(name)
		if wild && ipErr == nil || !hostRE.MatchString(name) && ipErr != nil {
			return nil, fmt.Errorf("--elicit-url-allow %q: want a host name (example.com), an address, or *.domain", clip(h))
		}
		if wild {
			a.suffixes = append(a.suffixes, "."+name)
		} else {
			a.exact[name] = true
		}
	}
	return a, nil
}

// hostRE is a DNS name in ASCII (IDNA names in their xn-- form).
var hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

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
