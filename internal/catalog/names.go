package catalog

import (
	"strings"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Skeleton is the form under which two exposed tool names count as the
// same name (UTS #39's skeleton, plus case folding: a model reads
// "Read_File" and "read_file" as one tool): names that a model or a person
// could mistake for one another share a skeleton, and the catalog refuses
// a second name whose skeleton is already taken.
//
// Tool names are ASCII (spec.ValidToolName refuses everything else
// rather than normalising it), so NFKC is the identity on them and the
// confusable mapping needed is the ASCII part of Unicode's confusables.txt:
// '0' as 'o', '1' and 'I' as 'l', "rn" as 'm', "vv" as 'w', "cl" as 'd',
// plus the separators '-' and '_' as one. Case folding and that mapping
// must agree (a skeleton is an equivalence): 'I' is 'i' by case and 'l' by
// shape, so i, I, l and 1 are one letter here. That merges a few honest
// pairs ("mail", "mall"); a second such name is refused, not guessed at.
func Skeleton(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '0':
			c = 'o'
		case c == '1' || c == 'I' || c == 'i':
			c = 'l'
		case c == '-' || c == '.' || c == '/':
			c = '_' // one separator: fin_lookup, fin-lookup and fin/lookup pass for fin.lookup
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	s := b.String()
	// Letters that look like pairs are written as the pair, so that the
	// mapping is an equivalence (a greedy vv→w made fin_vvv and fin_vw
	// differ).
	for _, p := range [][2]string{{"m", "rn"}, {"w", "vv"}, {"d", "cl"}} {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}

// namespaceWithin names the other upstream whose namespace (prefix and
// '.') an exposed name contains at the start of any of its dot-separated
// segments, compared by skeleton: upstream "evil" presenting "fs.read_file"
// (exposed evil.fs.read_file) or an unprefixed one presenting
// "FS.read_file" would pass for a tool of upstream fs. "" if none.
func namespaceWithin(name, self string, ups []spec.Upstream) string {
	for start := 0; ; {
		rest := Skeleton(name[start:]) // any separator after the prefix counts: fin/lookup, fin_lookup
		for _, u := range ups {
			if u.Name != self && u.Prefix != "" && strings.HasPrefix(rest, Skeleton(u.Prefix)+"_") {
				return u.Name
			}
		}
		dot := strings.IndexByte(name[start:], '.')
		if dot < 0 {
			return ""
		}
		start += dot + 1
	}
}
