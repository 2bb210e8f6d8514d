package approval

import (
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

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		newID(): true, "apr_abcdefghijklmnop": true, "apr_ABCDEFGHIJKLMNOP": false, "apr_abc": false, "xyz_abcdefghijklmnop": false,
		"apr_abcdefghijklmno1": false, "": false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %t", id, !want)
		}
	}
}
