// Command ostiary-load measures what the gateway costs. In one run it
// starts a fixture MCP upstream, a plain httputil.ReverseProxy in front of
// it, and Ostiary with everything on (authentication, strict decoding,
// RBAC, schema validation, identity assertions, durable audit), then drives
// the same tools/call at each with 1 and 16 concurrent clients and prints
// throughput and latency, as ratios against the reverse proxy. Everything
// listens on 127.0.0.1 and every run is bounded in time and count.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"
)

func main() {
	duration := flag.Duration("duration", 3*time.Second, "measuring time per target and concurrency (max 60s)")
	maxCalls := flag.Int("max-calls", 200000, "upper bound of calls per target and concurrency")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ostiary-load:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *duration <= 0 || *duration > time.Minute || *maxCalls <= 0 {
		fmt.Fprintln(os.Stderr, "ostiary-load: -duration must be in (0, 60s] and -max-calls positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *duration, *maxCalls, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "ostiary-load:", err)
		os.Exit(1)
	}
}
