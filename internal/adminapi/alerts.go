package adminapi

import (
	"net/http"
	"strconv"

	"github.com/ostiary/ostiary/internal/alert"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/fault"
)

// AlertList is GET /alerts[?status=open|acknowledged][&limit=N], newest
// first.
type AlertList struct {
	Alerts []alert.Alert `json:"alerts"`
}

// AlertAck is POST /alerts/{id}/ack.
type AlertAck struct {
	Reason string `json:"reason"`
}

var errNoAlerts = fault.New(fault.NotFound, "alerts are not configured on this server: start it with --alerts FILE")

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	if a.Alerts == nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(alert.EventList, ""), errNoAlerts)
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, p.Record(alert.EventList, ""), fault.New(fault.Invalid, "limit: 1 to 500"))
		}
		limit = n
	}
	as, err := a.Alerts.List(r.Context(), p, r.URL.Query().Get("status"), limit)
	if as == nil {
		as = []alert.Alert{}
	}
	return http.StatusOK, AlertList{Alerts: as}, err
}

func (a *API) ackAlert(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	target := "alert:?"
	if alert.ValidID(r.PathValue("id")) {
		target = "alert:" + r.PathValue("id")
	}
	rec := p.Record(alert.EventAcknowledged, target)
	if a.Alerts == nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, errNoAlerts)
	}
	var in AlertAck
	if err := a.decode(w, r, rec, &in); err != nil {
		return 0, nil, err
	}
	al, err := a.Alerts.Ack(r.Context(), p, r.PathValue("id"), in.Reason)
	return http.StatusOK, al, err
}
