// Package metrics is Ostiary's Prometheus instrumentation: the counters,
// gauges and histograms of the gateway, the governance pipeline, the audit
// writer, the approvals and the upstreams, on a registry of their own,
// served by Handler on the --metrics-listen address.
//
// Cardinality is bounded by construction: no label carries a user, a key,
// an argument or anything else a client chooses. Labels are the MCP
// method (from the gateway's allow-list), the era, the decision's effect
// and reason codes (the pipeline's constants and the policy document's
// rule reasons), the rate limit's kind and the upstream (an admin's
// catalog entry); each dynamic label set is capped (maxValues) and what
// is past the cap counts under "other".
//
// The hot path pays for a map read and an atomic add: children of each
// vector are looked up once and kept in a copy-on-write map read without
// a lock (cache). A nil *Metrics records nothing, so every caller may hold
// one unconditionally.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Eras, as the requests metric labels them.
const (
	EraModern = "2026-07-28" // stateless requests
	EraLegacy = "2025"       // the session-based 2025 revisions
)

// Rate limits, as the rate-limited metric labels them.
const (
	LimitKey  = "key"
	LimitUser = "user"
	LimitTool = "tool"
)

// Other is the label value past a label's cap of distinct values.
const Other = "other"

// maxValues caps the distinct values of one dynamic label.
const maxValues = 128

// Metrics holds every Ostiary metric.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	reqModern   cache[prometheus.Counter]
	reqLegacy   cache[prometheus.Counter]
	decisions   *prometheus.CounterVec
	byEffect    cache[*cache[prometheus.Counter]] // effect → reason → counter
	risk        prometheus.Histogram
	rateLimited *prometheus.CounterVec
	limited     cache[prometheus.Counter]
	decided     *prometheus.HistogramVec
	auditBatch  prometheus.Histogram
	auditCommit prometheus.Histogram
	upLatency   *prometheus.HistogramVec
	upErrors    *prometheus.CounterVec
	upstreams   cache[upstreamObs]
}

type upstreamObs struct {
	latency prometheus.Observer
	errors  prometheus.Counter
}

// New returns the metrics on a registry of their own, with the Go
// runtime's and the process's.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ostiary_mcp_requests_total",
		Help: "MCP JSON-RPC requests received at /mcp, by method (unknown and malformed for the refused) and protocol era."}, []string{"method", "era"})
	m.reqModern.make = func(method string) prometheus.Counter { return m.requests.WithLabelValues(method, EraModern) }
	m.reqLegacy.make = func(method string) prometheus.Counter { return m.requests.WithLabelValues(method, EraLegacy) }
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ostiary_decisions_total",
		Help: "Governance decisions, by effect (allow, approve, deny) and reason code; a decision with several reasons counts once under each."}, []string{"effect", "reason"})
	m.byEffect.make = func(effect string) *cache[prometheus.Counter] {
		return &cache[prometheus.Counter]{make: func(r string) prometheus.Counter { return m.decisions.WithLabelValues(effect, r) }}
	}
	m.risk = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ostiary_risk_score",
		Help: "Risk scores (0-100) of the policy's decisions on tool calls.", Buckets: prometheus.LinearBuckets(10, 10, 10)})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ostiary_rate_limited_total",
		Help: "Requests refused by a rate limit, by limit (key, user, tool)."}, []string{"limit"})
	m.limited.make = func(l string) prometheus.Counter { return m.rateLimited.WithLabelValues(l) }
	m.decided = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ostiary_approval_decision_seconds",
		Help:    "Time from an approval request to its settlement by votes, by result (approved, denied).",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}}, []string{"result"})
	m.auditBatch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ostiary_audit_batch_records",
		Help: "Records per audit batch committed (one log append and fdatasync each).", Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	m.auditCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ostiary_audit_commit_seconds",
		Help: "Time to commit one audit batch durably.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.upLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ostiary_upstream_request_seconds",
		Help: "Time of requests to upstreams (tool calls, reads, prompts, completions), by upstream.", Buckets: prometheus.DefBuckets}, []string{"upstream"})
	m.upErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ostiary_upstream_errors_total",
		Help: "Upstream requests that failed for the upstream's health (no answer, transport errors, timeouts), by upstream."}, []string{"upstream"})
	m.upstreams.make = func(u string) upstreamObs {
		return upstreamObs{latency: m.upLatency.WithLabelValues(u), errors: m.upErrors.WithLabelValues(u)}
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ostiary_build_info", Help: "Always 1; the version of the running binary.",
		ConstLabels: prometheus.Labels{"version": version}})
	info.Set(1)
	m.reg.MustRegister(m.requests, m.decisions, m.risk, m.rateLimited, m.decided, m.auditBatch, m.auditCommit, m.upLatency, m.upErrors, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where every metric is registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Request counts an MCP request of method (from the allow-list, or
// "unknown" / "malformed") in its era.
func (m *Metrics) Request(method string, legacy bool) {
	if m == nil {
		return
	}
	if legacy {
		m.reqLegacy.get(method).Inc()
		return
	}
	m.reqModern.get(method).Inc()
}

// Decision counts a decision of effect, once under each of its reasons.
func (m *Metrics) Decision(effect string, reasons ...string) {
	if m == nil {
		return
	}
	byReason := m.byEffect.get(effect)
	for _, r := range reasons {
		byReason.get(r).Inc()
	}
}

// Risk observes a decision's risk score.
func (m *Metrics) Risk(score int) {
	if m == nil {
		return
	}
	m.risk.Observe(float64(score))
}

// RateLimited counts a request refused by limit (LimitKey, LimitUser,
// LimitTool).
func (m *Metrics) RateLimited(limit string) {
	if m == nil {
		return
	}
	m.limited.get(limit).Inc()
}

// ApprovalSettled observes the time an approval request took to be
// approved or denied.
func (m *Metrics) ApprovalSettled(approved bool, took time.Duration) {
	if m == nil {
		return
	}
	result := "denied"
	if approved {
		result = "approved"
	}
	m.decided.WithLabelValues(result).Observe(took.Seconds())
}

// AuditBatch observes one committed audit batch.
func (m *Metrics) AuditBatch(records int, took time.Duration) {
	if m == nil {
		return
	}
	m.auditBatch.Observe(float64(records))
	m.auditCommit.Observe(took.Seconds())
}

// Upstream observes one request to upstream, and whether it failed for
// the upstream's health.
func (m *Metrics) Upstream(upstream string, took time.Duration, failed bool) {
	if m == nil {
		return
	}
	o := m.upstreams.get(upstream)
	o.latency.Observe(took.Seconds())
	if failed {
		o.errors.Inc()
	}
}

// Gauges are read when the metrics are scraped; each may be nil.
type Gauges struct {
	AuditQueue       func() int // records queued for the audit writer
	ApprovalsPending func() (int, bool)
	Sessions         func() int // 2025-era sessions open
	Streams          func() int // GET streams open
	KillSwitches     func() int // active switches
	// Circuits calls fn for each upstream whose breaker exists, with
	// whether its circuit is open.
	Circuits func(fn func(upstream string, open bool))
}

// Observe registers the gauges read at each scrape.
func (m *Metrics) Observe(g Gauges) {
	if m == nil {
		return
	}
	gauge := func(name, help string, f func() int) {
		if f != nil {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) }))
		}
	}
	gauge("ostiary_audit_queue_records", "Records queued for the audit writer, not yet in a batch.", g.AuditQueue)
	gauge("ostiary_sessions_open", "2025-era MCP sessions open.", g.Sessions)
	gauge("ostiary_streams_open", "MCP GET streams open.", g.Streams)
	gauge("ostiary_kill_switches_active", "Kill switches engaged and not released.", g.KillSwitches)
	if g.ApprovalsPending != nil {
		m.reg.MustRegister(&pendingCollector{f: g.ApprovalsPending})
	}
	if g.Circuits != nil {
		m.reg.MustRegister(&circuitCollector{f: g.Circuits})
	}
}

var pendingDesc = prometheus.NewDesc("ostiary_approvals_pending", "Approval requests waiting for votes.", nil, nil)

// pendingCollector reads the pending approvals from the store at each
// scrape; a store that does not answer leaves the metric out of that
// scrape rather than report a wrong count.
type pendingCollector struct{ f func() (int, bool) }

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	if n, ok := c.f(); ok {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n))
	}
}

var circuitDesc = prometheus.NewDesc("ostiary_upstream_circuit_open", "1 while the upstream's circuit breaker is open (calls refused at once), else 0.",
	[]string{"upstream"}, nil)

type circuitCollector struct{ f func(func(string, bool)) }

func (c *circuitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- circuitDesc }

func (c *circuitCollector) Collect(ch chan<- prometheus.Metric) {
	n := 0
	c.f(func(upstream string, open bool) {
		if n++; n > maxValues {
			return
		}
		v := 0.0
		if open {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(circuitDesc, prometheus.GaugeValue, v, upstream)
	})
}

// cache maps a label value to its child metric: read without a lock from
// a copy-on-write map; a new value takes the mutex, copies the map and
// adds it. Past maxValues distinct values, every new one maps to Other.
type cache[T any] struct {
	make func(string) T
	m    atomic.Pointer[map[string]T]
	mu   sync.Mutex
}

func (c *cache[T]) get(k string) T {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[string]T, 1)
	if old != nil {
		for kk, v := range *old {
			next[kk] = v
		}
	}
	if len(next) >= maxValues {
		k = Other
		if v, ok := next[k]; ok {
			return v
		}
	}
	v := c.make(k)
	next[k] = v
	c.m.Store(&next)
	return v
}
