package adminapi

import (
	"net/http"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/killswitch"
)

// NewKillSwitch is POST /killswitches.
type NewKillSwitch struct {
	Kind   killswitch.Kind `json:"kind"`
	Target string          `json:"target"`
	Reason string          `json:"reason"`
}

// Release is POST /killswitches/{id}/release.
type Release struct {
	Reason string `json:"reason"`
}

// KillSwitchList is GET /killswitches.
type KillSwitchList struct {
	KillSwitches []killswitch.Switch `json:"killswitches"`
}

func (a *API) listKillSwitches(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	all, err := a.Kill.List(r.Context(), p)
	if all == nil {
		all = []killswitch.Switch{}
	}
	return http.StatusOK, KillSwitchList{KillSwitches: all}, err
}

func (a *API) engageKillSwitch(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in NewKillSwitch
	if err := a.decode(w, r, p.Record(killswitch.EventEngage, ""), &in); err != nil {
		return 0, nil, err
	}
	sw, err := a.Kill.Engage(r.Context(), p, in.Kind, in.Target, in.Reason)
	return http.StatusCreated, sw, err
}

func (a *API) releaseKillSwitch(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in Release
	if err := a.decode(w, r, p.Record(killswitch.EventRelease, "killswitch:"+r.PathValue("id")), &in); err != nil {
		return 0, nil, err
	}
	sw, err := a.Kill.Release(r.Context(), p, r.PathValue("id"), in.Reason)
	return http.StatusOK, sw, err
}
