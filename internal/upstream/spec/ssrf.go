package spec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// DialPolicy is where one upstream's connections may go.
type DialPolicy struct {
	// allowPrivate unlocks the addresses the table marks private
	// (--allow-private); those it marks never stay refused.
	allowPrivate bool
	// loopbackOnly: a plain http:// upstream without --allow-plain-http
	// is dialled only at a loopback address, where nothing is on the wire.
	loopbackOnly bool
}

// DialPolicy is where u may be dialled: a plain http:// upstream without
// --allow-plain-http only at loopback, whatever its name resolves to.
func (u Upstream) DialPolicy() DialPolicy {
	plain := !strings.HasPrefix(strings.ToLower(u.URL), "https://")
	return DialPolicy{allowPrivate: u.AllowPrivate, loopbackOnly: plain && !u.AllowPlainHTTP}
}

// check judges the address a connection is about to be opened to.
func (p DialPolicy) check(ip netip.Addr) error {
	v := judge(ip)
	switch {
	case v.reach == never:
		return &ssrfError{addr: ip.String(), kind: v.class, hint: "which no upstream may reach"}
	case v.reach == private && !p.allowPrivate:
		return &ssrfError{addr: ip.String(), kind: v.class, hint: "allow it for this upstream with --allow-private"}
	case p.loopbackOnly && !ip.Unmap().IsLoopback():
		return &ssrfError{addr: ip.String(), plain: true}
	}
	return nil
}

// ssrfError is a refused connection.
type ssrfError struct {
	addr, kind, hint string
	plain            bool // plain HTTP off loopback
}

func (e *ssrfError) Error() string {
	if e.plain {
		return fmt.Sprintf("refused to send plain HTTP to %s, which is not a loopback address: use https://, or allow it for this upstream with --allow-plain-http", e.addr)
	}
	return fmt.Sprintf("refused to connect to %s, a %s address: %s", e.addr, e.kind, e.hint)
}

// RefusedAddress returns the message of an SSRF refusal in err's chain.
func RefusedAddress(err error) (string, bool) {
	var se *ssrfError
	if errors.As(err, &se) {
		return se.Error(), true
	}
	return "", false
}

// GuardedTransport dials only where policy allows. The check runs on the
// address actually dialled, after DNS resolution (whatever spelling the
// resolver accepted), so neither DNS rebinding nor a redirect can reach a
// forbidden address.
func GuardedTransport(policy DialPolicy) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	d.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &ssrfError{addr: address, kind: "unparsable", hint: "which no upstream may reach"}
		}
		return policy.check(ap.Addr())
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
