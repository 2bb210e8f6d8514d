package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/app"
)

// options are the command line's settings.
type options struct {
	duration time.Duration // measured time per run
	maxCalls int           // calls per run at most
	pairs    []pair        // client/upstream eras to measure
	profile  string        // CPU profile of the Ostiary process, if set
}

var concurrencies = []int{1, 16}

// runKey names one measured run.
type runKey struct {
	target string
	pair   pair
	conc   int
}

// setup is what one benchmark run measures against.
type setup struct {
	hz               int64
	hzSource         string
	dataDir          string
	syncP50, syncP99 time.Duration
	upstream, proxy  map[string]*proc // by upstream era
	ostiary          *proc
	ostiaryKey       string
	ostiaryTool      map[string]string // by upstream era
	measured         time.Duration     // all runs, warm-ups included
}

func run(ctx context.Context, o options, out io.Writer) error {
	s := &setup{upstream: map[string]*proc{}, proxy: map[string]*proc{}}
	s.hz, s.hzSource = clockTicks()
	var err error
	if s.dataDir, err = os.MkdirTemp("", "ostiary-load-"); err != nil {
		return err
	}
	defer os.RemoveAll(s.dataDir) // deferred first: runs after the processes have ended
	adminKey, err := app.Init(ctx, s.dataDir, time.Now)
	if err != nil {
		return err
	}
	if s.syncP50, s.syncP99, err = probeSync(s.dataDir, 300); err != nil {
		return fmt.Errorf("measuring fdatasync in %s: %w", s.dataDir, err)
	}
	var procs []*proc
	defer func() {
		for _, p := range slices.Backward(procs) { // Ostiary first, the upstreams last
			p.stop()
		}
	}()
	start := func(name string, env []string, args ...string) (*proc, error) {
		p, err := spawn(ctx, name, env, args...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	for _, era := range []string{era2026, era2025} {
		if s.upstream[era], err = start("upstream "+era, nil, "upstream-"+era[:4]); err != nil {
			return err
		}
		if s.proxy[era], err = start("reverse proxy to the "+era+" upstream", nil, "proxy", s.upstream[era].url); err != nil {
			return err
		}
	}
	if s.ostiary, err = start("ostiary", []string{
		"OSTIARY_RATE_KEY=off", "OSTIARY_RATE_USER=off", "OSTIARY_RATE_TOOL=off", // measure the path, not the limits
		"OSTIARY_LOG_LEVEL=error",
	}, "ostiary", s.dataDir, o.profile); err != nil {
		return err
	}
	if s.ostiaryKey, err = configureOstiary(ctx, s, adminKey); err != nil {
		return err
	}
	header(out, s, o)

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
	res := map[runKey]result{}
	t0 := time.Now()
	for _, conc := range concurrencies {
		for _, p := range o.pairs {
			for _, t := range s.targets(p) {
				drive(ctx, client, t, p.client, conc, 300, time.Second, s.hz) // warm up: connections, sessions, caches
				r := drive(ctx, client, t, p.client, conc, o.maxCalls, o.duration, s.hz)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res[runKey{t.name, p, conc}] = r
			}
		}
	}
	s.measured = time.Since(t0)
	report(out, s, o, res)
	var failed []string
	for k, r := range res {
		if r.failure != "" {
			failed = append(failed, fmt.Sprintf("%s %s at %d clients", k.target, k.pair, k.conc))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d runs failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// targets are the endpoints measured for p: direct and through the
// reverse proxy (when the client can talk to the upstream at all), and
// through Ostiary.
func (s *setup) targets(p pair) []target {
	up := s.upstream[p.upstream]
	ost := target{"ostiary", s.ostiary.url + "/mcp", s.ostiaryTool[p.upstream], s.ostiaryKey, s.ostiary, up}
	if !p.native() {
		return []target{ost}
	}
	return []target{
		{"direct", up.url, "echo", "", nil, up},
		{"reverse proxy", s.proxy[p.upstream].url, "echo", "", s.proxy[p.upstream], up},
		ost,
	}
}

// configureOstiary registers both upstreams and a service account allowed
// to call their echo tools, and returns its API key.
func configureOstiary(ctx context.Context, s *setup, adminKey string) (string, error) {
	admin := func(path, body string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", s.ostiary.url+"/api/v1"+path, bytes.NewBufferString(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		status, b, err := do(http.DefaultClient, req)
		if err == nil && status != 201 && status != 200 {
			err = fmt.Errorf("POST %s: %d %s", path, status, b)
		}
		return b, err
	}
	s.ostiaryTool = map[string]string{era2026: "fix.echo", era2025: "fix25.echo"}
	steps := [][2]string{
		{"/upstreams", `{"name":"fix","url":"` + s.upstream[era2026].url + `","allow_private":true}`},
		{"/upstreams", `{"name":"fix25","url":"` + s.upstream[era2025].url + `","allow_private":true}`},
		{"/roles", `{"name":"loader","grants":["invoke:fix.*","invoke:fix25.*"]}`},
		{"/users", `{"name":"loader","roles":["loader"],"service":true}`},
	}
	// Labelled, so the default policy allows the agent's calls (an
	// unlabelled tool that may write would be held for approval).
	for _, tool := range s.ostiaryTool {
		steps = append(steps, [2]string{"/tools/labels", `{"tool":"` + tool + `","labels":{"data_classes":["internal"],"irreversible":false,"egress":false,"require_approval":false}}`})
	}
	for _, step := range steps {
		if _, err := admin(step[0], step[1]); err != nil {
			return "", err
		}
	}
	b, err := admin("/keys", `{"user":"loader"}`)
	if err != nil {
		return "", err
	}
	var k struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.APIKey == "" {
		return "", errors.Join(errors.New("POST /keys answered no api_key"), err)
	}
	return k.APIKey, nil
}

func header(out io.Writer, s *setup, o options) {
	fmt.Fprintf(out, "ostiary-load: %s per run (at most %d calls) after a warm-up of 300 calls or 1s; %d CPUs; load average %s at start\n",
		o.duration, o.maxCalls, runtime.NumCPU(), loadAverage())
	fmt.Fprintf(out, "processes: load generator %d, upstream 2026 %d, upstream 2025 %d, proxy→2026 %d, proxy→2025 %d, ostiary %d (each its own; CPU from /proc/PID/stat, %d ticks/s, %s)\n",
		os.Getpid(), s.upstream[era2026].pid(), s.upstream[era2025].pid(), s.proxy[era2026].pid(), s.proxy[era2025].pid(), s.ostiary.pid(), s.hz, s.hzSource)
	fmt.Fprintf(out, "data directory %s: 4 KiB append + fdatasync, 300 times: median %s, p99 %s\n", s.dataDir, us(s.syncP50), us(s.syncP99))
	fmt.Fprintf(out, "eras client→upstream: 2026 = %s (stateless requests), 2025 = %s (initialize once per client, then Mcp-Session-Id)\n\n", era2026, era2025)
}
