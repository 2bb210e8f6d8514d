package alert

import (
	"net"
	"net/netip"
	"strings"
)

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }

// loopback reports whether host is a loopback address or localhost.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
