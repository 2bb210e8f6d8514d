package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/anchor"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/govern"
)

// auditHealth is what readiness asks of the audit writer.
type auditHealth interface {
	Stopped() *audit.StorageError // stopped for good (a storage failure)
	Health() error                // the last commit or probe failed
	Stalled() bool                // in one call to the store for longer than its timeout
}

// pinger is what readiness asks of the store.
type pinger interface {
	Ping(ctx context.Context) error
}

// readiness decides /readyz: the audit writer first (nothing is served
// without it), then the store.
type readiness struct {
	audit   auditHealth
	store   pinger
	timeout time.Duration
	log     *slog.Logger
	anchors func() []anchor.Status // reported, not required (nil: none)
}

// notReadyErr names the part at fault, its state and the cause, in words
// safe for anyone who can reach the port.
type notReadyErr struct{ component, state, cause string }

func (e *notReadyErr) Error() string { return e.component + " " + e.state + ": " + e.cause }

// check returns nil when the server is ready.
func (rd readiness) check(ctx context.Context) *notReadyErr {
	if se := rd.audit.Stopped(); se != nil {
		return &notReadyErr{"audit-log", "stopped", se.Cause}
	}
	if rd.audit.Stalled() {
		return &notReadyErr{"audit-log", "stalled", "a commit has not finished within the store timeout (a slow or hung disk)"}
	}
	if err := rd.audit.Health(); err != nil {
		return &notReadyErr{"audit-log", "failing", "the store is busy or too slow"}
	}
	ctx, cancel := context.WithTimeout(ctx, rd.timeout)
	defer cancel()
	if err := rd.store.Ping(ctx); err != nil {
		var se *audit.StorageError
		if errors.As(err, &se) { // the writer stops on its next look
			return &notReadyErr{"audit-log", "stopped", se.Cause}
		}
		rd.log.Warn("not ready", "err", err)
		return &notReadyErr{"store", "unreachable", "no answer within the store timeout"}
	}
	return nil
}

// ready answers /readyz: 200 only while the audit writer can commit (not
// stopped, not stalled on the disk, its last commit or probe fine) and
// the store answers a read within its timeout. Otherwise 503, naming the
// part at fault and why in words safe for anyone who can reach the port
// (no paths, no driver text; those are in the operational log):
//
//	{"status":"unavailable","component":"audit-log","state":"stopped","cause":"disk full",
//	 "action":"restart the server once the storage is fixed"}
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	readiness{audit: a.writer, store: a.store, timeout: a.cfg.StoreTimeout, log: a.log, anchors: a.AnchorStatus}.ServeHTTP(w, r)
}

func (rd readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := rd.check(r.Context()); e != nil {
		notReady(w, e.component, e.state, e.cause)
		return
	}
	if rd.anchors == nil {
		writeStatus(w, http.StatusOK, "ready")
		return
	}
	if st := rd.anchors(); st != nil {
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
