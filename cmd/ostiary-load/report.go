package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"
)

// The targets of issue 13, as ratios within one run.
const (
	targetThroughput  = 0.90 // Ostiary's calls/s at 16 clients ÷ the proxy's, at least
	targetGatewayCPU  = 1.5  // Ostiary's CPU per call ÷ the proxy's, at most
	targetUpstreamCPU = 1.05 // the upstream's CPU per call behind Ostiary ÷ behind the proxy, at most
	latencySlack      = 100 * time.Microsecond
)

func report(out io.Writer, s *setup, o options, res map[runKey]result) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "clients\teras\ttarget\tcalls/s\tp50\tp99\tthroughput ÷ proxy\tadded p50\tCPU µs/call: gateway\tupstream\tload gen\t")
	var failures []string
	starred := false
	for _, conc := range concurrencies {
		for _, p := range o.pairs {
			base := p.baseline()
			proxy, direct := res[runKey{"reverse proxy", base, conc}], res[runKey{"direct", base, conc}]
			for _, t := range s.targets(p) {
				r := res[runKey{t.name, p, conc}]
				if r.failure != "" {
					fmt.Fprintf(w, "%d\t%s\t%s\tfailed\t\t\t\t\t\t\t\t\n", conc, p, t.name)
					failures = append(failures, fmt.Sprintf("%s %s at %d clients: %s", t.name, p, conc, r.failure))
					continue
				}
				star := ""
				if base != p {
					star, starred = "*", true
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", conc, p, t.name, r.perSecond(),
					us(r.p50), us(r.p99), ratio(r.perSecond(), proxy.perSecond(), proxy.failure)+star,
					added(r, direct)+star, cpu(r.cpu[roleGateway]), cpu(r.cpu[roleUpstream]), cpu(r.cpu[roleLoad]))
			}
		}
	}
	w.Flush()
	fmt.Fprintf(out, "added p50: over direct with the same eras. CPU µs/call: utime+stime of each process over the measured interval ÷ calls.\n")
	if starred {
		fmt.Fprintf(out, "* a 2025-11-25 upstream refuses 2026-07-28 requests: compared with a 2025 client's direct and proxy runs.\n")
	}
	for _, f := range failures {
		fmt.Fprintln(out, "FAILED:", f)
	}
	fmt.Fprintf(out, "\ntargets (issue 13; noisy on a shared machine):\n")
	for _, p := range o.pairs {
		targets(out, s, p, res)
	}
	fmt.Fprintf(out, "\n%s for every run, warm-ups included\n", s.measured.Round(time.Second))
}

// targets evaluates issue 13's targets for Ostiary at eras p.
func targets(out io.Writer, s *setup, p pair, res map[runKey]result) {
	base := p.baseline()
	get := func(target string, q pair, conc int) (result, bool) {
		r, ok := res[runKey{target, q, conc}]
		return r, ok && r.failure == ""
	}
	o16, ok1 := get("ostiary", p, 16)
	x16, ok2 := get("reverse proxy", base, 16)
	if ok1 && ok2 {
		th := o16.perSecond() / x16.perSecond()
		fmt.Fprintf(out, "  %s throughput at 16 clients: ostiary %.2f× the reverse proxy (target ≥ %.2f)%s\n", p, th, targetThroughput, verdict(th >= targetThroughput))
		g := o16.cpu[roleGateway] / x16.cpu[roleGateway]
		fmt.Fprintf(out, "  %s gateway CPU per call at 16 clients: ostiary %.0f µs = %.1f× the proxy's %.0f µs (target ≤ %.1f)%s\n",
			p, o16.cpu[roleGateway], g, x16.cpu[roleGateway], targetGatewayCPU, verdict(g <= targetGatewayCPU))
		u := o16.cpu[roleUpstream] / x16.cpu[roleUpstream]
		fmt.Fprintf(out, "  %s upstream CPU per call at 16 clients behind ostiary: %.0f µs = %.2f× behind the proxy, %.0f µs (target ≤ %.2f)%s\n",
			p, o16.cpu[roleUpstream], u, x16.cpu[roleUpstream], targetUpstreamCPU, verdict(u <= targetUpstreamCPU))
	} else {
		fmt.Fprintf(out, "  %s at 16 clients: not evaluated, a run failed\n", p)
	}
	o1, ok1 := get("ostiary", p, 1)
	x1, ok2 := get("reverse proxy", base, 1)
	d1, ok3 := get("direct", base, 1)
	if ok1 && ok2 && ok3 {
		proxyAdded, ostAdded := x1.p50-d1.p50, o1.p50-d1.p50
		budget := proxyAdded + 2*s.syncP50 + latencySlack
		fmt.Fprintf(out, "  %s added p50 at 1 client: ostiary %s; budget = proxy's added p50 %s + 2 × fdatasync %s + %s = %s%s\n",
			p, us(ostAdded), us(proxyAdded), us(s.syncP50), us(latencySlack), us(budget), verdict(ostAdded <= budget))
	} else {
		fmt.Fprintf(out, "  %s at 1 client: not evaluated, a run failed\n", p)
	}
}

func verdict(met bool) string {
	if met {
		return ": met"
	}
	return ": missed"
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func ratio(a, b float64, failure string) string {
	if failure != "" || !(b > 0) { // NaN: not measured
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func added(r, direct result) string {
	if direct.failure != "" || direct.calls == 0 {
		return "—"
	}
	return us(r.p50 - direct.p50)
}

func cpu(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.0f", v)
}
