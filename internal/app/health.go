package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
)

// ready answers /readyz: 200 only while the audit writer can commit and
// the store answers a read within its timeout. Otherwise 503, naming the
// part at fault and why in words safe for anyone who can reach the port
// (no paths, no driver text; those are in the operational log):
//
//	{"status":"unavailable","component":"audit-log","state":"stopped","cause":"disk full",
//	 "action":"restart the server once the storage is fixed"}
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	if se := a.writer.Stopped(); se != nil {
		notReady(w, "audit-log", "stopped", se.Cause)
		return
	}
	if err := a.writer.Health(); err != nil {
		notReady(w, "audit-log", "failing", "the store is busy or too slow")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StoreTimeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		var se *audit.StorageError
		if errors.As(err, &se) { // the writer stops on its next look
			notReady(w, "audit-log", "stopped", se.Cause)
			return
		}
		a.log.Warn("not ready", "err", err)
		notReady(w, "store", "unreachable", "no answer within the store timeout")
		return
	}
	if st := a.AnchorStatus(); st != nil {
		// Anchors are reported, not required: a witness down does not take
		// the server out of service (nothing on the call path waits for it).
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(map[string]any{"status": "ready", "anchors": st})
		return
	}
	writeStatus(w, http.StatusOK, "ready")
}

func notReady(w http.ResponseWriter, component, state, cause string) {
	body := map[string]string{"status": "unavailable", "component": component, "state": state, "cause": cause}
	if state == "stopped" {
		body["action"] = "restart the server once the storage is fixed"
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(w).Encode(body)
}

// failClosed answers every request 503 with Retry-After, at the door,
// once the audit writer has stopped for good: nothing can be recorded, so
// nothing is done, whichever path (MCP era, admin route) would have
// noticed it further in. The cause was logged once, when it stopped.
func (a *App) failClosed(h http.Handler, mcp bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.writer.Stopped() == nil {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		if mcp {
			json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil, "error": govern.ErrAudit})
			return
		}
		json.NewEncoder(w).Encode(adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "unavailable",
			Message: "the audit log cannot be written; the action was not performed"}})
	})
}
