package approval

import (
	"strings"
	"testing"

	"github.com/ostiary/ostiary/internal/policy"
)

// N-of-M counts distinct approving people, per requirement, with the role
// a requirement names.
func TestSatisfied(t *testing.T) {
	vote := func(who string, approve bool, roles ...string) Vote {
		return Vote{Approver: who, Approve: approve, Roles: roles}
	}
	two := []policy.Requirement{{Approvers: 2}}
	lead := []policy.Requirement{{Approvers: 1, Role: "finance-lead"}, {Approvers: 2}}
	for _, c := range []struct {
		reqs  []policy.Requirement
		votes []Vote
		want  bool
	}{
		{two, nil, false},
		{two, []Vote{vote("a", true)}, false},
		{two, []Vote{vote("a", true), vote("b", false)}, false},
		{two, []Vote{vote("a", true), vote("b", true)}, true},
		{lead, []Vote{vote("a", true), vote("b", true)}, false},
		{lead, []Vote{vote("a", true, "finance-lead")}, false},
		{lead, []Vote{vote("a", true, "finance-lead"), vote("b", true, "staff")}, true},
		{[]policy.Requirement{{Approvers: 0}}, nil, false}, // 0 means 1
	} {
		if got := satisfied(c.reqs, c.votes); got != c.want {
			t.Errorf("%+v with %+v: %t", c.reqs, c.votes, got)
		}
	}
}

// An approval id carries 128 bits from crypto/rand: 26 base32 letters.
// The 80-bit ids of earlier versions (16 letters) stay valid, so stored
// requests can still be read and decided.
func TestIDHas128Bits(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		raw, err := idEncoding.DecodeString(strings.ToUpper(strings.TrimPrefix(id, "apr_")))
		if len(id) != 30 || err != nil || len(raw) != 16 || !ValidID(id) || seen[id] {
			t.Fatalf("id %q: %d bytes of randomness, %v", id, len(raw), err)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		newID(): true, "apr_abcdefghijklmnop": true, "apr_abcdefghijklmnopqrstuvwxy": false, "apr_abcdefghijklmnopqrstuvwxyz": true,
		"apr_abcdefghijklmnopqrstuvwxyz2": false, "apr_abcdefghijklmnopqrstuvwxy1": false, "apr_ABCDEFGHIJKLMNOP": false, "apr_abc": false, "xyz_abcdefghijklmnop": false,
		"apr_abcdefghijklmno1": false, "": false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %t", id, !want)
		}
	}
}
