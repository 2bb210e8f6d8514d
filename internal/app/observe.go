package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/killswitch"
	"github.com/ostiary/ostiary/internal/metrics"
)

// observe registers the gauges read at each scrape: what the audit
// writer has queued, the approvals pending (from the store, bounded by
// the store timeout), the gateway's sessions and streams, the active kill
// switches and each upstream's circuit.
func (a *App) observe(kill *killswitch.Service) {
	if a.metrics == nil {
		return
	}
	a.metrics.Observe(metrics.Gauges{
		AuditQueue: a.writer.Queued,
		ApprovalsPending: func() (int, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
			defer cancel()
			n, err := a.store.CountApprovals(ctx, approval.Pending)
			if err != nil {
				a.log.Warn("metrics: cannot count pending approvals", "err", err)
				return 0, false
			}
			return n, true
		},
		Sessions:     func() int { s, _ := a.gateway.Open(); return s },
		Streams:      func() int { _, s := a.gateway.Open(); return s },
		KillSwitches: kill.Active,
		Circuits:     a.pool.Circuits,
	})
}

// serveMetrics listens on --metrics-listen, if set, and serves GET
// /metrics there: nothing else, and no API key (the address is the
// operator's to keep on a monitoring network). Without TLS it is a
// loopback address (config.Validate); with TLS it has the server's
// certificate.
func (a *App) serveMetrics() error {
	if a.metrics == nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("cannot listen on --metrics-listen %s: %w", a.cfg.MetricsListen, err)
	}
	if a.tls != nil {
		ln = tls.NewListener(ln, a.tls)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeStatus(w, http.StatusNotFound, "not found") })
	a.mln = ln
	a.mserver = &http.Server{Handler: mux, TLSConfig: a.tls, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := a.mserver.Serve(ln); err != nil && err != http.ErrServerClosed {
			a.log.Error("metrics server stopped", "err", err)
		}
	}()
	a.log.Info("serving metrics", "addr", ln.Addr().String(), "tls", a.tls != nil)
	return nil
}

// closeMetrics stops the metrics listener of a start that failed.
func (a *App) closeMetrics() {
	if a.mserver != nil {
		a.mserver.Close()
		a.mserver = nil
	}
}

// MetricsURL is the metrics endpoint's URL, after Start; "" when
// metrics are off.
func (a *App) MetricsURL() string {
	if a.mln == nil {
		return ""
	}
	scheme := "http"
	if a.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + a.mln.Addr().String() + "/metrics"
}
