package spec

import "net/netip"

// reach is what an address class allows an HTTP upstream to do.
type reach int

const (
	// public: the address may be dialled.
	public reach = iota
	// private: only for an upstream an admin allowed with --allow-private
	// (loopback, private use, link-local, shared, benchmarking networks).
	private
	// never: no upstream may be dialled there, whatever it is allowed:
	// the address is not a host (unspecified, broadcast, multicast,
	// reserved, discard) or is reserved for documentation or for a
	// protocol's anycast service, which no MCP server is.
	never
)

// special is one entry of the IANA IPv4 and IPv6 Special-Purpose Address
// Registries (plus the multicast and not-yet-allocated space around them).
// wraps, if set, extracts the IPv4 addresses the entry embeds: the address
// is judged as strictly as the strictest of them, so that a translator or a
// tunnel cannot carry a dial to an address that is refused when spelt as
// IPv4.
type special struct {
	prefix netip.Prefix
	name   string
	rfc    string
	reach  reach
	wraps  func(netip.Addr) []netip.Addr
}

func sp(prefix, name, rfc string, r reach) special {
	return special{prefix: netip.MustParsePrefix(prefix), name: name, rfc: rfc, reach: r}
}

func wrapper(prefix, name, rfc string, r reach, wraps func(netip.Addr) []netip.Addr) special {
	s := sp(prefix, name, rfc, r)
	s.wraps = wraps
	return s
}

// specials is the table an address is judged by: its longest matching
// prefix decides. IPv4-mapped IPv6 (::ffff:0:0/96, RFC 4291) is not an
// entry: such an address is judged as the IPv4 address it maps.
var specials = []special{
	// IPv4 Special-Purpose Address Registry.
	sp("0.0.0.0/8", `"this network"`, "RFC 791", never), // 0.0.0.0 itself reaches this host on Linux
	sp("0.0.0.0/32", `"this host" (unspecified)`, "RFC 1122", never),
	sp("10.0.0.0/8", "private-use", "RFC 1918", private),
	sp("100.64.0.0/10", "shared (carrier-grade NAT)", "RFC 6598", private),
	sp("127.0.0.0/8", "loopback", "RFC 1122", private),
	sp("169.254.0.0/16", "link-local (cloud metadata lives here)", "RFC 3927", private),
	sp("172.16.0.0/12", "private-use", "RFC 1918", private),
	sp("192.0.0.0/24", "IETF protocol assignments", "RFC 6890", never),
	sp("192.0.0.0/29", "DS-Lite", "RFC 7335", never),
	sp("192.0.0.8/32", "IPv4 dummy", "RFC 7600", never),
	sp("192.0.0.9/32", "Port Control Protocol anycast", "RFC 7723", never),
	sp("192.0.0.10/32", "TURN anycast", "RFC 8155", never),
	sp("192.0.0.170/31", "NAT64/DNS64 discovery", "RFC 8880", never),
	sp("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737", never),
	sp("192.31.196.0/24", "AS112 anycast", "RFC 7535", never),
	sp("192.52.193.0/24", "AMT anycast", "RFC 7450", never),
	sp("192.88.99.0/24", "6to4 relay anycast (deprecated)", "RFC 7526", never),
	sp("192.168.0.0/16", "private-use", "RFC 1918", private),
	sp("192.175.48.0/24", "AS112 direct delegation", "RFC 7534", never),
	sp("198.18.0.0/15", "benchmarking", "RFC 2544", private),
	sp("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737", never),
	sp("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737", never),
	sp("224.0.0.0/4", "multicast", "RFC 5771", never),
	sp("240.0.0.0/4", "reserved", "RFC 1112", never),
	sp("255.255.255.255/32", "limited broadcast", "RFC 919", never),

	// IPv6: outside 2000::/3, nothing is global unicast.
	sp("::/3", "reserved by the IETF (not global unicast)", "RFC 4291", never),
	sp("4000::/2", "reserved by the IETF (not global unicast)", "RFC 4291", never),
	sp("8000::/1", "reserved by the IETF (not global unicast)", "RFC 4291", never),
	// IPv6 Special-Purpose Address Registry.
	sp("::/128", "unspecified", "RFC 4291", never),
	sp("::1/128", "loopback", "RFC 4291", private),
	sp("::/96", "IPv4-compatible (deprecated)", "RFC 4291", never),
	wrapper("64:ff9b::/96", "NAT64 (IPv4-IPv6 translation)", "RFC 6052", private, last32),
	wrapper("64:ff9b:1::/48", "local-use NAT64", "RFC 8215", private, last32),
	sp("100::/64", "discard-only", "RFC 6666", never),
	sp("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780", never),
	sp("2001::/23", "IETF protocol assignments", "RFC 2928", never),
	wrapper("2001::/32", "Teredo", "RFC 4380", public, teredo),
	sp("2001:1::1/128", "Port Control Protocol anycast", "RFC 7723", never),
	sp("2001:1::2/128", "TURN anycast", "RFC 8155", never),
	sp("2001:1::3/128", "DNS-SD service registration anycast", "RFC 9665", never),
	sp("2001:2::/48", "benchmarking", "RFC 5180", private),
	sp("2001:3::/32", "AMT anycast", "RFC 7450", never),
	sp("2001:4:112::/48", "AS112 anycast", "RFC 7535", never),
	sp("2001:10::/28", "ORCHID (deprecated)", "RFC 4843", never),
	sp("2001:20::/28", "ORCHIDv2", "RFC 7343", never),
	sp("2001:30::/28", "drone remote ID", "RFC 9374", never),
	sp("2001:db8::/32", "documentation", "RFC 3849", never),
	wrapper("2002::/16", "6to4", "RFC 3056", public, sixToFour),
	sp("2620:4f:8000::/48", "AS112 direct delegation", "RFC 7534", never),
	sp("3fff::/20", "documentation", "RFC 9637", never),
	sp("5f00::/16", "SRv6 segment identifiers", "RFC 9602", never),
	sp("fc00::/7", "unique local", "RFC 4193", private),
	sp("fe80::/10", "link-local", "RFC 4291", private),
	sp("fec0::/10", "site-local (deprecated)", "RFC 3879", private),
	sp("ff00::/8", "multicast", "RFC 4291", never),
}

// last32 is the IPv4 address in the low 32 bits: NAT64 with a /96 prefix
// (RFC 6052 §2.2), the only length the well-known prefix has and the usual
// one under the local-use prefix.
func last32(ip netip.Addr) []netip.Addr {
	b := ip.As16()
	return []netip.Addr{netip.AddrFrom4([4]byte(b[12:16]))}
}

// sixToFour is the IPv4 address in bits 16–48 of 2002::/16.
func sixToFour(ip netip.Addr) []netip.Addr {
	b := ip.As16()
	return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
}

// teredo is the Teredo server (bits 32–64) and the client, whose address
// is the low 32 bits inverted.
func teredo(ip netip.Addr) []netip.Addr {
	b := ip.As16()
	client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
	return []netip.Addr{netip.AddrFrom4([4]byte(b[4:8])), netip.AddrFrom4(client)}
}

// verdict is how an address is judged: its reach and, unless public, the
// class that decided it.
type verdict struct {
	reach reach
	class string // e.g. "loopback (RFC 1122)", "loopback (RFC 1122) inside NAT64 (RFC 6052)"
}

// judge classifies ip by the table. An invalid address is never dialled.
func judge(ip netip.Addr) verdict {
	if !ip.IsValid() {
		return verdict{never, "invalid"}
	}
	ip = ip.WithZone("").Unmap()
	s, ok := lookup(ip)
	if !ok {
		return verdict{reach: public}
	}
	v := verdict{s.reach, s.name + " (" + s.rfc + ")"}
	if s.wraps != nil {
		for _, inner := range s.wraps(ip) {
			if w := judge(inner); w.reach > v.reach {
				v = verdict{w.reach, w.class + " inside " + s.name + " (" + s.rfc + ")"}
			}
		}
	}
	if v.reach == public {
		v.class = ""
	}
	return v
}

// lookup returns the longest-prefix entry of specials holding ip.
func lookup(ip netip.Addr) (special, bool) {
	var best special
	found := false
	for _, s := range specials {
		if s.prefix.Contains(ip) && (!found || s.prefix.Bits() > best.prefix.Bits()) {
			best, found = s, true
		}
	}
	return best, found
}
