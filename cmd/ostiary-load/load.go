package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/config"
)

// target is one endpoint to drive.
type target struct {
	name, url, tool, key string
}

type result struct {
	calls    int
	errors   int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) perSecond() float64 { return float64(r.calls) / r.elapsed.Seconds() }

func run(ctx context.Context, d time.Duration, maxCalls int, out io.Writer) error {
	upURL, stopUp, err := startUpstream()
	if err != nil {
		return err
	}
	defer stopUp()
	proxyURL, stopProxy, err := startProxy(upURL)
	if err != nil {
		return err
	}
	defer stopProxy()
	ost, stopOst, err := startOstiary(ctx, upURL)
	if err != nil {
		return err
	}
	defer stopOst()

	targets := []target{
		{"direct", upURL, "echo", ""},
		{"reverse proxy", proxyURL, "echo", ""},
		ost,
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
	results := map[string]map[int]result{}
	for _, conc := range []int{1, 16} {
		for _, t := range targets {
			drive(ctx, client, t, conc, 300, time.Second) // warm up: connections, sessions, caches
			r := drive(ctx, client, t, conc, maxCalls, d)
			if r.errors > 0 {
				return fmt.Errorf("%s at %d clients: %d of %d calls failed", t.name, conc, r.errors, r.calls+r.errors)
			}
			if r.calls == 0 {
				return fmt.Errorf("%s at %d clients: no call completed in %s", t.name, conc, d)
			}
			if results[t.name] == nil {
				results[t.name] = map[int]result{}
			}
			results[t.name][conc] = r
		}
	}
	report(out, targets, results)
	return nil
}

// drive runs conc workers calling t until d has passed or n calls are made.
func drive(ctx context.Context, client *http.Client, t target, conc, n int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + t.tool + `","arguments":{"text":"hello"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ostiary-load","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`)
	var issued atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1024)
			bad := 0
			for ctx.Err() == nil && issued.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := call(ctx, client, t, body); err != nil {
					if ctx.Err() != nil {
						break
					}
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := result{calls: len(lat), errors: errs, elapsed: time.Since(start)}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

func call(ctx context.Context, client *http.Client, t target, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", t.tool)
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"echo":"hello"`)) {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return nil
}

func report(out io.Writer, targets []target, res map[string]map[int]result) {
	proxy, direct := res["reverse proxy"], res["direct"]
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "target\tclients\tcalls/s\tp50\tp99\tthroughput ÷ proxy\tp50 ÷ proxy\tp99 ÷ proxy\t")
	for _, conc := range []int{1, 16} {
		for _, t := range targets {
			r := res[t.name][conc]
			p := proxy[conc]
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%s\t%.2f\t%.2f\t%.2f\t\n", t.name, conc, r.perSecond(), r.p50.Round(time.Microsecond),
				r.p99.Round(time.Microsecond), r.perSecond()/p.perSecond(), float64(r.p50)/float64(p.p50), float64(r.p99)/float64(p.p99))
		}
	}
	w.Flush()
	o, p, dr := res["ostiary"][1], proxy[1], direct[1]
	fmt.Fprintf(out, "\nadded p50 latency at 1 client: reverse proxy %s, ostiary %s (%.1f×)\n",
		(p.p50 - dr.p50).Round(time.Microsecond), (o.p50 - dr.p50).Round(time.Microsecond), float64(o.p50-dr.p50)/float64(max(p.p50-dr.p50, time.Microsecond)))
	fmt.Fprintf(out, "throughput at 16 clients: ostiary %.2f× the reverse proxy (target ≥ 0.90)\n", res["ostiary"][16].perSecond()/proxy[16].perSecond())
}

func listen() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return ln, "http://" + ln.Addr().String(), nil
}

// startUpstream serves a minimal MCP tool (2026-07-28, stateless, JSON).
func startUpstream() (string, func(), error) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "load-fixture", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echo text."},
		func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, map[string]any, error) {
			return nil, map[string]any{"echo": a.Text}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	ln, base, err := listen()
	if err != nil {
		return "", nil, err
	}
	s := &http.Server{Handler: h}
	go s.Serve(ln)
	return base + "/mcp", func() { s.Close() }, nil
}

// startProxy is the baseline: a plain reverse proxy, nothing checked.
func startProxy(upstream string) (string, func(), error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return "", nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64}
	rp.ErrorLog = log.New(io.Discard, "", 0) // requests cut at the end of a run are expected
	ln, base, err := listen()
	if err != nil {
		return "", nil, err
	}
	s := &http.Server{Handler: rp}
	go s.Serve(ln)
	return base + u.Path, func() { s.Close() }, nil
}

// startOstiary runs a real Ostiary on a fresh data directory in front of
// the upstream, with a user allowed to call its tool.
func startOstiary(ctx context.Context, upstream string) (target, func(), error) {
	dir, err := os.MkdirTemp("", "ostiary-load-")
	if err != nil {
		return target{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	adminKey, err := app.Init(ctx, dir, time.Now)
	if err != nil {
		cleanup()
		return target{}, nil, err
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.RateKey, cfg.RateUser, cfg.RateTool = config.Rate{}, config.Rate{}, config.Rate{} // measure the path, not the limits
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		cleanup()
		return target{}, nil, err
	}
	if err := a.Start(ctx); err != nil {
		a.Close(context.Background())
		cleanup()
		return target{}, nil, err
	}
	stop := func() { a.Close(context.Background()); cleanup() }
	base := "http://" + a.Addr()
	admin := func(path string, body string, out *string) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/v1"+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 && resp.StatusCode != 200 {
			return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		if out != nil {
			*out = string(b)
		}
		return nil
	}
	var keyJSON string
	for _, step := range []struct{ path, body string }{
		{"/upstreams", `{"name":"fix","url":"` + upstream + `","allow_private":true}`},
		{"/roles", `{"name":"loader","grants":["invoke:fix.*"]}`},
		{"/users", `{"name":"loader","roles":["loader"],"service":true}`},
		// Labelled, so the default policy allows the agent's calls (an
		// unlabelled tool that may write would be held for approval).
		{"/tools/labels", `{"tool":"fix.echo","labels":{"data_classes":["internal"],"irreversible":false,"egress":false,"require_approval":false}}`},
	} {
		if err := admin(step.path, step.body, nil); err != nil {
			stop()
			return target{}, nil, err
		}
	}
	if err := admin("/keys", `{"user":"loader"}`, &keyJSON); err != nil {
		stop()
		return target{}, nil, err
	}
	i := bytes.Index([]byte(keyJSON), []byte(`"api_key":"`))
	if i < 0 {
		stop()
		return target{}, nil, fmt.Errorf("no key in %s", keyJSON)
	}
	key := keyJSON[i+len(`"api_key":"`):]
	key = key[:bytes.IndexByte([]byte(key), '"')]
	return target{"ostiary", base + "/mcp", "fix.echo", key}, stop, nil
}
