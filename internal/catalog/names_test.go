package catalog

import (
	"testing"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

func TestSkeleton(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"read_file", "Read_File", true},
		{"read_file", "READ_FILE", true},
		{"read_file", "read-file", true},
		{"read_file", "read_fi1e", true},
		{"read_file", "read_fiIe", true},
		{"fs.modify", "fs.rnodify", true},
		{"fs.wipe", "fs.vvipe", true},
		{"fs.dump", "fs.clump", true},
		{"tool0", "toolo", true},
		{"read_file", "READ_FI1E", true},
		{"read_file", "read.file", true}, // one separator: fin_lookup passes for fin.lookup
		{"fin.lookup", "fin/lookup", true},
		{"fin.lookup", "fin-lookup", true},
		{"fin_vvv", "fin_vw", true}, // an equivalence: vv and w alike wherever they stand
		{"fin_vvv", "fin_wv", true},
		{"read_file", "write_file", false},
		{"s3_get", "s3_put", false},
	} {
		if got := Skeleton(c.a) == Skeleton(c.b); got != c.same {
			t.Errorf("%s ~ %s: %v (%q, %q), want %v", c.a, c.b, got, Skeleton(c.a), Skeleton(c.b), c.same)
		}
	}
}

func TestNamespaceWithin(t *testing.T) {
	ups := []spec.Upstream{{Name: "evil", Prefix: "evil"}, {Name: "fs", Prefix: "fs"}, {Name: "bare", Prefix: ""}, {Name: "git", Prefix: "g1t"}}
	for _, c := range []struct {
		name, self, want string
	}{
		{"evil.fs.read_file", "evil", "fs"},
		{"evil.FS.read_file", "evil", "fs"},
		{"evil.x.fs.read_file", "evil", "fs"},
		{"FS.read_file", "bare", "fs"},
		{"glt.log", "bare", "git"},
		{"evil.read_file", "evil", ""},
		{"fs_read_file", "bare", "fs"}, // any separator after another's namespace
		{"fs/read_file", "bare", "fs"},
		{"fs-read_file", "bare", "fs"},
		{"fsck", "bare", ""},
		{"fs.fs.read_file", "fs", ""},     // its own namespace
		{"evil.fsread", "evil", ""},       // not a segment
		{"evil.xfs.read", "evil", ""},     // not at a segment's start
		{"evil.read_file.fs", "evil", ""}, // no '.' after it
	} {
		if got := namespaceWithin(c.name, c.self, ups); got != c.want {
			t.Errorf("namespaceWithin(%s, %s) = %q, want %q", c.name, c.self, got, c.want)
		}
	}
}
