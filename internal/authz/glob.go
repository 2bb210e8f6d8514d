package authz

// Match reports whether name matches the glob pattern: '*' matches any run
// of characters (dots included), '?' exactly one, anything else itself.
// Matching is case-sensitive and byte-wise; it runs in O(len(pattern) ×
// len(name)) at worst, without recursion.
func Match(pattern, name string) bool {
	return match(pattern, name, func(p, c byte) bool { return p == '?' || p == c })
}

// Contains reports whether every name matching pattern q also matches
// pattern p. It treats q as a word over its own symbols: p's '*' may match
// any of them, p's '?' any single one except q's '*', and a literal only
// itself. That is sound; it may miss containments that need reasoning about
// several of p's stars at once.
func Contains(p, q string) bool {
	return match(p, q, func(pc, qc byte) bool {
		if pc == '?' {
			return qc != '*'
		}
		return pc == qc
	})
}

// match is the classic greedy glob matcher with one backtrack point, which is
// exact for patterns whose only multi-symbol wildcard is '*'.
func match(pattern, s string, single func(p, c byte) bool) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			starP, starS = pi, si
			pi++
		case pi < len(pattern) && single(pattern[pi], s[si]):
			pi++
			si++
		case starP >= 0:
			starS++
			pi, si = starP+1, starS
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
