package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// ElicitHosts reads the hosts a URL-mode elicitation may point at
// (--elicit-url-allow): exact host names (example.com) or addresses, and
// *.domain for the domain's subdomains (not the domain itself). It returns
// them as spec.NewHostAllow takes them: lower case, without a final '.' or
// an address's brackets, "*." kept before a domain.
func ElicitHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range hosts {
		name, wild := strings.CutPrefix(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."), "*.")
		name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
		_, ipErr := netip.ParseAddr(name)
		if wild && ipErr == nil || !hostRE.MatchString(name) && ipErr != nil {
			return nil, fmt.Errorf("--elicit-url-allow %q: want a host name (example.com), an address, or *.domain", clip(h))
		}
		if wild {
			name = "*." + name
		}
		out = append(out, name)
	}
	return out, nil
}

// hostRE is a DNS name in ASCII (IDNA names in their xn-- form).
var hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
