package spec

import (
	"net/netip"
	"strings"
	"testing"
)

// Every entry of the IANA IPv4 and IPv6 Special-Purpose Address
// Registries, each at an address inside it, judged as the registry and our
// policy say: written out here, not derived from the table under test.
func TestJudgeRegistry(t *testing.T) {
	const P, X, N = public, private, never
	for addr, want := range map[string]reach{
		// IPv4.
		"0.0.0.0": N, "0.1.2.3": N, "0.255.255.255": N,
		"10.0.0.0": X, "10.255.255.255": X,
		"100.64.0.1": X, "100.127.255.254": X, "100.63.255.255": P, "100.128.0.0": P,
		"127.0.0.1": X, "127.255.255.254": X,
		"169.254.169.254": X, "169.254.0.1": X,
		"172.16.0.1": X, "172.31.255.255": X, "172.15.255.255": P, "172.32.0.0": P,
		"192.0.0.1": N, "192.0.0.8": N, "192.0.0.9": N, "192.0.0.10": N, "192.0.0.170": N, "192.0.0.171": N, "192.0.0.200": N,
		"192.0.2.1":    N,
		"192.31.196.1": N,
		"192.52.193.1": N,
		"192.88.99.1":  N,
		"192.168.1.1":  X,
		"192.175.48.1": N,
		"198.18.0.1":   X, "198.19.255.255": X, "198.17.255.255": P, "198.20.0.0": P,
		"198.51.100.7": N,
		"203.0.113.9":  N,
		"224.0.0.1":    N, "239.255.255.255": N,
		"240.0.0.1": N, "254.1.2.3": N, "255.255.255.255": N,
		"93.184.216.34": P, "8.8.8.8": P, "1.1.1.1": P, "223.255.255.255": P,
		// IPv4-mapped: judged as the IPv4 address.
		"::ffff:127.0.0.1": X, "::ffff:169.254.169.254": X, "::ffff:0.0.0.0": N, "::ffff:8.8.8.8": P,
		// IPv6.
		"::": N, "::1": X,
		"::127.0.0.1": N, "::8.8.8.8": N, // IPv4-compatible, deprecated
		"64:ff9b::8.8.8.8": X, "64:ff9b::127.0.0.1": X, "64:ff9b::0.0.0.0": N, "64:ff9b::240.0.0.1": N,
		"64:ff9b:1:abcd::808:808": X, "64:ff9b:1::7f00:1": X, "64:ff9b:1:ffff::0.0.0.0": N,
		"100::1": N, "100:0:0:1::1": N,
		"2001:1::1": N, "2001:1::2": N, "2001:1::3": N, "2001:1::4": N,
		"2001:2::1":     X,
		"2001:3::1":     N,
		"2001:4:112::1": N,
		"2001:10::1":    N, "2001:20::1": N, "2001:30::1": N,
		"2001:db8::1":     N,
		"2620:4f:8000::1": N,
		"3fff::1":         N,
		"5f00::1":         N,
		"fc00::1":         X, "fd12:3456::1": X,
		"fe80::1": X, "fe80::1%eth0": X,
		"fec0::1": X,
		"ff02::1": N, "ff05::2": N,
		"4000::1": N, "8000::1": N, "1000::1": N, "e000::1": N,
		"2606:4700::1111": P, "2a00:1450:4001::1": P,
		// 6to4: 2002:AABB:CCDD:: embeds AA.BB.CC.DD.
		"2002:7f00:1::1": X, "2002:a9fe:a9fe::": X, "2002:0:0::1": N, "2002:c000:201::": N, "2002:808:808::1": P,
		// Teredo: 2001:0:SERVER:flags:port:^CLIENT.
		"2001:0:808:808:0:0:80ff:fffe": X, // client 127.0.0.1
		"2001:0:808:808::ffff:ffff":    N, // client 0.0.0.0
		"2001:0:a00:1::f7f7:f7f7":      X, // server 10.0.0.1, client 8.8.8.8
		"2001:0:808:808::f7f7:f7f7":    P, // both public
	} {
		ip := netip.MustParseAddr(addr)
		if got := judge(ip); got.reach != want {
			t.Errorf("%s: reach %d (%s), want %d", addr, got.reach, got.class, want)
		}
	}
}

// Each entry of the table judges the first or the last address of its
// prefix, names its RFC, and is not shadowed by a duplicate.
func TestSpecialsTable(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for _, s := range specials {
		if seen[s.prefix] || s.prefix != s.prefix.Masked() || !strings.HasPrefix(s.rfc, "RFC ") || s.name == "" {
			t.Errorf("entry %v (%s, %s): duplicate, unmasked or without an RFC", s.prefix, s.name, s.rfc)
		}
		seen[s.prefix] = true
		addr := s.prefix.Addr()
		if got, _ := lookup(addr); got.prefix != s.prefix { // a more specific entry starts where it does
			addr = lastAddr(s.prefix)
		}
		got, ok := lookup(addr)
		if !ok || got.prefix != s.prefix {
			t.Errorf("%v: neither its first nor its last address is judged by it, but by %v", s.prefix, got.prefix)
		}
		if v := judge(addr); v.reach < s.reach || v.reach != public && !strings.Contains(v.class, s.rfc) {
			t.Errorf("%v: judged %d (%s), entry says %d", s.prefix, v.reach, v.class, s.reach)
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// A wrapped address names both what it wraps and the wrapping.
func TestJudgeNamesTheWrapping(t *testing.T) {
	v := judge(netip.MustParseAddr("64:ff9b::0.0.0.0"))
	if v.class != `"this host" (unspecified) (RFC 1122) inside NAT64 (IPv4-IPv6 translation) (RFC 6052)` {
		t.Error(v.class)
	}
}
