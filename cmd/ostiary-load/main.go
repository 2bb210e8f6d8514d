// Command ostiary-load measures what the gateway costs. In one run it
// starts, each as a process of its own, a fixture MCP upstream of each
// protocol era (2026-07-28 stateless; 2025-11-25 with sessions), a plain
// httputil.ReverseProxy in front of each, and Ostiary (what `ostiary
// serve` runs, with everything on: authentication, strict decoding, RBAC,
// schema validation, identity assertions, durable audit) in front of both.
// It drives the same tools/call directly, through the proxy and through
// Ostiary, with clients of either era, at 1 and 16 concurrent clients, and
// prints throughput, latency and the CPU time per call of each process
// (from /proc/PID/stat), as ratios against the reverse proxy, with the
// data disk's fdatasync latency and issue 13's targets evaluated.
// Everything listens on 127.0.0.1, every run is bounded in time and count,
// and the processes it started are ended by PID when it ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		os.Exit(child(os.Args[2:]))
	}
	duration := flag.Duration("duration", 3*time.Second, "measuring time per target, eras and concurrency (max 60s)")
	maxCalls := flag.Int("max-calls", 200000, "upper bound of calls per target, eras and concurrency")
	eras := flag.String("eras", "2026/2026,2025/2026,2025/2025,2026/2025", "client/upstream era pairs to measure (2026 = 2026-07-28, 2025 = 2025-11-25)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the Ostiary process over the whole run to this file")
	flag.Parse()
	pairs, err := parsePairs(*eras)
	if err != nil || *duration <= 0 || *duration > time.Minute || *maxCalls <= 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "ostiary-load: -duration must be in (0, 60s], -max-calls positive, -eras pairs of 2026 or 2025 such as 2025/2026")
		os.Exit(2)
	}
	profile := *cpuProfile
	if profile != "" {
		if profile, err = filepath.Abs(profile); err != nil {
			fmt.Fprintln(os.Stderr, "ostiary-load:", err)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, options{*duration, *maxCalls, pairs, profile}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ostiary-load:", err)
		stop()
		os.Exit(1)
	}
}

// parsePairs reads "client/upstream,…". Ostiary's runs of a 2026 client
// of a 2025 upstream are compared with a 2025 client's direct and proxy
// runs, so selecting the one adds the other.
func parsePairs(s string) ([]pair, error) {
	full := map[string]string{"2026": era2026, "2025": era2025}
	var pairs []pair
	for item := range strings.SplitSeq(s, ",") {
		c, u, ok := strings.Cut(strings.TrimSpace(item), "/")
		if full[c] == "" || full[u] == "" || !ok {
			return nil, fmt.Errorf("eras %q: want client/upstream, each 2026 or 2025", item)
		}
		if p := (pair{full[c], full[u]}); !slices.Contains(pairs, p) {
			pairs = append(pairs, p)
		}
	}
	for _, p := range pairs {
		if b := p.baseline(); !slices.Contains(pairs, b) {
			pairs = append(pairs, b)
		}
	}
	return pairs, nil
}
