package export

import (
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/ostiary/ostiary/internal/audit"
)

// OCSF constants (schema 1.3.0).
const (
	ocsfVersion           = "1.3.0"
	classAPIActivity      = 6003 // Application Activity category (6)
	classAuthorizeSess    = 3003 // Identity & Access Management category (3)
	categoryApplication   = 6
	categoryIAM           = 3
	activityOther         = 99
	statusSuccess         = 1
	statusFailure         = 2
	severityInformational = 1
	severityMedium        = 3
)

// decisions are the events that record an authorization decision: OCSF
// Authorize Session; every other record is API Activity.
var decisions = map[string]bool{"tool-call": true, "prompt-get": true, "resource-read": true, "completion": true,
	"authn-failure": true, "authn-failures": true, "tool-refused": true, "method-refused": true, "request-refused": true,
	"requests-refused": true, "rate-limited": true, "killswitch-block": true, "approval-decided": true}

// Line encodes one record in format, without a newline.
func Line(format string, r *audit.Record) ([]byte, error) {
	if format == FormatOCSF {
		return json.Marshal(ocsf(r))
	}
	return json.Marshal(r.View())
}

func activity(event string) (int, string) {
	switch {
	case strings.HasSuffix(event, "-create"), strings.HasSuffix(event, "-add"), strings.HasSuffix(event, "-requested"), strings.HasSuffix(event, "-raised"):
		return 1, "Create"
	case strings.HasSuffix(event, "-list"), strings.HasSuffix(event, "-show"), strings.HasSuffix(event, "-read"), strings.HasSuffix(event, "-query"), event == "whoami":
		return 2, "Read"
	case strings.HasSuffix(event, "-set"), strings.HasSuffix(event, "-enable"), strings.HasSuffix(event, "-disable"), strings.HasSuffix(event, "-activated"):
		return 3, "Update"
	case strings.HasSuffix(event, "-remove"), strings.HasSuffix(event, "-revoke"):
		return 4, "Delete"
	}
	return activityOther, "Other"
}

// ocsf maps a record to an OCSF event: Authorize Session (3003) for
// decisions, API Activity (6003) for the rest. What OCSF has no place for
// is under unmapped; the record's seq and hash are its metadata, so an
// exported event can be checked against the chain.
func ocsf(r *audit.Record) map[string]any {
	class, category := classAPIActivity, categoryApplication
	actID, actName := activity(r.Event)
	if decisions[r.Event] {
		class, category, actID, actName = classAuthorizeSess, categoryIAM, activityOther, "Other"
	}
	status, statusName, severity := statusSuccess, "Success", severityInformational
	if r.Outcome != audit.Success {
		status, statusName, severity = statusFailure, "Failure", severityMedium
	}
	detail := r.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	e := map[string]any{
		"class_uid": class, "category_uid": category, "activity_id": actID, "activity_name": actName,
		"type_uid": class*100 + actID, "time": r.Time.UnixMilli(), "severity_id": severity,
		"status_id": status, "status": statusName, "message": r.Event,
		"metadata": map[string]any{"version": ocsfVersion, "product": map[string]any{"name": "Ostiary", "vendor_name": "Ostiary"},
			"log_name": "ostiary-audit", "sequence": r.Seq, "uid": hex.EncodeToString(r.Hash[:]), "correlation_uid": r.RequestID},
		"api":      map[string]any{"operation": r.Event, "request": map[string]any{"uid": r.RequestID}},
		"unmapped": map[string]any{"outcome": string(r.Outcome), "detail": detail, "prev": hex.EncodeToString(r.Prev[:])},
	}
	if r.Reason != "" {
		e["status_code"], e["status_detail"] = r.Reason, r.Reason
	}
	if r.Actor != "" || r.KeyID != "" {
		user := map[string]any{"name": r.Actor}
		if r.KeyID != "" {
			user["credential_uid"] = r.KeyID
		}
		e["actor"] = map[string]any{"user": user}
	}
	if r.Remote != "" {
		host := r.Remote
		if i := strings.LastIndex(host, ":"); i > 0 && !strings.HasSuffix(host, "]") {
			host = host[:i]
		}
		e["src_endpoint"] = map[string]any{"ip": strings.Trim(host, "[]")}
	}
	if r.Target != "" {
		kind, name, _ := strings.Cut(r.Target, ":")
		e["resources"] = []any{map[string]any{"type": kind, "name": name, "uid": r.Target}}
	}
	return e
}
