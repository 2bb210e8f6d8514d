package govern

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/quota"
	"github.com/ostiary/ostiary/internal/upstream"
)

// A sealed state opens only for its caller, target, arguments and time,
// and any change to its text is refused.
func TestSealedState(t *testing.T) {
	s, err := newSealer()
	if err != nil {
		t.Fatal(err)
	}
	alice := &authn.Principal{User: "alice", KeyID: "k1"}
	now := time.Unix(1_800_000_000, 0)
	state, err := s.seal(continuation{Upstream: "their state", Approval: "apr_1"}, alice, "tool:fin.pay", "d1", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.open(state, alice, "tool:fin.pay", "d1", now.Add(time.Minute))
	if err != nil || c.Upstream != "their state" || c.Approval != "apr_1" {
		t.Fatalf("open: %+v %v", c, err)
	}
	if _, err := s.open(state, alice, "tool:fin.pay", "d1", now.Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("a state continued a second request: %v", err)
	}
	state, _ = s.seal(continuation{Upstream: "their state"}, alice, "tool:fin.pay", "d1", now)
	for _, bad := range []struct {
		name, state, target, digest string
		who                         *authn.Principal
		at                          time.Time
	}{
		{"other user", state, "tool:fin.pay", "d1", &authn.Principal{User: "bob", KeyID: "k2"}, now},
		{"same user, other key", state, "tool:fin.pay", "d1", &authn.Principal{User: "alice", KeyID: "k9"}, now},
		{"other target", state, "prompt:fin.pay", "d1", alice, now},
		{"other arguments", state, "tool:fin.pay", "d2", alice, now},
		{"expired", state, "tool:fin.pay", "d1", alice, now.Add(stateTTL + time.Second)},
		{"another gateway's", mustSeal(t, alice, now), "tool:fin.pay", "d1", alice, now},
		{"not ours", "their state", "tool:fin.pay", "d1", alice, now},
	} {
		if _, err := s.open(bad.state, bad.who, bad.target, bad.digest, bad.at); err == nil {
			t.Errorf("%s: opened", bad.name)
		}
	}
	for i := len(statePrefix); i < len(state); i++ {
		flipped := state[:i] + string(rune('A'+(state[i]+1)%26)) + state[i+1:]
		if flipped == state {
			continue
		}
		if _, err := s.open(flipped, alice, "tool:fin.pay", "d1", now); err == nil {
			t.Fatalf("altered at %d: opened", i)
		}
	}
	if _, err := s.seal(continuation{Upstream: strings.Repeat("x", maxUpstreamState+1)}, alice, "tool:t", "d", now); err == nil {
		t.Error("an oversized upstream state was sealed")
	}
}

func mustSeal(t *testing.T, p *authn.Principal, now time.Time) string {
	other, err := newSealer()
	if err != nil {
		t.Fatal(err)
	}
	s, err := other.seal(continuation{}, p, "tool:fin.pay", "d1", now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzOpenState: a client's requestState, whatever it holds, is refused
// unless it is one this gateway sealed; opening never panics.
func FuzzOpenState(f *testing.F) {
	s, err := newSealer()
	if err != nil {
		f.Fatal(err)
	}
	p := &authn.Principal{User: "alice", KeyID: "k1"}
	now := time.Unix(1_800_000_000, 0)
	good, _ := s.seal(continuation{Upstream: "u"}, p, "tool:t", "d", now)
	f.Add(good)
	f.Add("ost1.")
	f.Add("ost1.AAAA")
	f.Fuzz(func(t *testing.T, state string) {
		c, err := s.open(state, p, "tool:t", "d", now)
		if err == nil && (state != good || c.Upstream != "u") {
			t.Errorf("opened %q", state)
		}
	})
}

// A parked call's client is asked only what it declared, and a user has
// at most maxParkedPerUser calls waiting on answers.
func TestParkedAdmit(t *testing.T) {
	pl := &Pipeline{parked: quota.New(maxParkedPerUser)}
	alice := &authn.Principal{User: "alice", KeyID: "k1"}
	pc := pl.park(alice, "tool:t", "d", "", json.RawMessage(`{"elicitation":{}}`))
	var r *upstream.Refusal
	if err := pc.admit("sampling/createMessage"); !errors.As(err, &r) || r.Reason != "client-capability-missing" {
		t.Errorf("sampling without the capability: %v", err)
	}
	var calls []*parkedCall
	for range maxParkedPerUser {
		c := pl.park(alice, "tool:t", "d", "", json.RawMessage(`{"elicitation":{}}`))
		if err := c.admit("elicitation/create"); err != nil {
			t.Fatal(err)
		}
		if err := c.admit("elicitation/create"); err != nil { // a second question of the same call takes no place
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	if err := pc.admit("elicitation/create"); !errors.As(err, &r) || r.Reason != "too-many-waiting" {
		t.Errorf("one call too many: %v", err)
	}
	bob := pl.park(&authn.Principal{User: "bob", KeyID: "k2"}, "tool:t", "d", "", json.RawMessage(`{"elicitation":{}}`))
	if err := bob.admit("elicitation/create"); err != nil {
		t.Errorf("another user: %v", err)
	}
	pl.ended(calls[0], nil, nil)
	if err := pc.admit("elicitation/create"); err != nil {
		t.Errorf("after one ended: %v", err)
	}
}
