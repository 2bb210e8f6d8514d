package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// privateRange names the kind of address an upstream may reach only when
// an admin allowed it (--allow-private): anything but the public internet.
func privateRange(ip netip.Addr) (string, bool) {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback", true
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local (cloud metadata lives here)", true
	case ip.IsPrivate():
		return "private", true
	case ip.IsUnspecified():
		return "unspecified", true
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast", true
	case cgnat.Contains(ip):
		return "shared (carrier-grade NAT)", true
	}
	return "", false
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// ssrfError is a refused connection.
type ssrfError struct {
	addr, kind string
}

func (e *ssrfError) Error() string {
	return fmt.Sprintf("refused to connect to %s, a %s address: allow it for this upstream with --allow-private", e.addr, e.kind)
}

// RefusedAddress returns the message of an SSRF refusal in err's chain.
func RefusedAddress(err error) (string, bool) {
	var se *ssrfError
	if errors.As(err, &se) {
		return se.Error(), true
	}
	return "", false
}

// guardedTransport dials only public addresses unless allowPrivate. The
// check runs on the address actually dialled, after DNS resolution, so
// neither DNS rebinding nor a redirect can reach a forbidden address.
func guardedTransport(allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &ssrfError{addr: address, kind: "unparsable"}
			}
			if kind, private := privateRange(ap.Addr()); private {
				return &ssrfError{addr: ap.Addr().String(), kind: kind}
			}
			return nil
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.Proxy = nil // an environment proxy must not route around the guard
	// Many concurrent calls go to few upstreams: keep enough idle
	// connections per host that they are reused, not re-dialled.
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 64
	return t
}
