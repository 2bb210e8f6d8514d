package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The protocol eras, of the client and of the upstream.
const (
	era2026 = "2026-07-28" // stateless: every request carries its version and _meta
	era2025 = "2025-11-25" // sessions: initialize, then Mcp-Session-Id
)

// pair is a client era and an upstream era.
type pair struct{ client, upstream string }

func (p pair) String() string { return p.client[:4] + "→" + p.upstream[:4] }

// native reports whether the client can talk to the upstream without
// Ostiary between them: a 2025-11-25 server refuses 2026-07-28 requests,
// so direct and reverse proxy runs exist only for the other pairs.
func (p pair) native() bool { return !(p.client == era2026 && p.upstream == era2025) }

// baseline is the pair whose direct and proxy runs Ostiary's runs of p are
// compared with: p itself, or for a 2026-07-28 client of a 2025 upstream,
// a 2025 client of it (the best a plain proxy offers that upstream).
func (p pair) baseline() pair {
	if p.native() {
		return p
	}
	return pair{era2025, p.upstream}
}

// target is one endpoint to drive, and the processes that serve it.
type target struct {
	name           string // "direct", "reverse proxy" or "ostiary"
	url, tool, key string
	gateway        *proc // nil for direct
	upstream       *proc
}

// The roles whose CPU time is measured, in the order of result.cpu.
const (
	roleGateway = iota
	roleUpstream
	roleLoad
	roles
)

type result struct {
	calls, errors int
	failure       string // why the run is not a measurement, if it is not
	elapsed       time.Duration
	p50, p99      time.Duration
	cpu           [roles]float64 // µs per call; NaN: no such process
}

func (r result) perSecond() float64 { return float64(r.calls) / r.elapsed.Seconds() }

// drive runs conc workers calling t in the client era until d has passed
// or n calls are made. A 2025-era worker first opens a session and closes
// it after; the measured interval (latency, and the CPU time of the
// gateway, the upstream and this process) is the calls alone.
func drive(ctx context.Context, client *http.Client, t target, era string, conc, n int, d time.Duration, hz int64) result {
	sessions := make([]string, conc)
	if era == era2025 {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for i := range sessions {
			id, err := openSession(sctx, client, t)
			if err != nil {
				closeSessions(client, t, sessions[:i])
				return result{failure: fmt.Sprintf("session %d of %d: %v", i+1, conc, err)}
			}
			sessions[i] = id
		}
		defer closeSessions(client, t, sessions)
	}
	pids := [roles]int{-1, t.upstream.pid(), 0}
	if t.gateway != nil {
		pids[roleGateway] = t.gateway.pid()
	}
	before, err := cpuAll(pids)
	if err != nil {
		return result{failure: err.Error()}
	}
	// No new call after the deadline; calls in flight then complete (each
	// bounded by the client's timeout), so that none is cut and the CPU
	// time of the interval is that of whole calls.
	deadline := time.Now().Add(d)
	var issued atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	errs, firstErr := 0, ""
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1024)
			bad, why := 0, ""
			for id := 1; ctx.Err() == nil && time.Now().Before(deadline) && issued.Add(1) <= int64(n); id++ {
				t0 := time.Now()
				if err := call(ctx, client, t, era, sessions[w], id); err != nil {
					if ctx.Err() != nil {
						break
					}
					if bad++; why == "" {
						why = err.Error()
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			if errs += bad; firstErr == "" {
				firstErr = why
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := result{calls: len(lat), errors: errs, elapsed: time.Since(start)}
	after, err := cpuAll(pids)
	switch {
	case err != nil:
		r.failure = err.Error()
	case errs > 0:
		r.failure = fmt.Sprintf("%d of %d calls failed, the first: %s", errs, r.calls+errs, firstErr)
	case r.calls == 0:
		r.failure = fmt.Sprintf("no call completed in %s", d)
	default:
		slices.Sort(lat)
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		for i := range r.cpu {
			r.cpu[i] = math.NaN()
			if pids[i] >= 0 {
				r.cpu[i] = float64(after[i]-before[i]) * 1e6 / float64(hz) / float64(r.calls)
			}
		}
	}
	return r
}

// cpuAll reads the CPU ticks of each process; a negative pid is none.
func cpuAll(pids [roles]int) ([roles]int64, error) {
	var t [roles]int64
	for i, pid := range pids {
		if pid < 0 {
			continue
		}
		var err error
		if t[i], err = cpuTicks(pid); err != nil {
			return t, err
		}
	}
	return t, nil
}

// call makes one tools/call of t's echo tool, as a client of era does: a
// 2026-07-28 request carries its version, client info and capabilities in
// _meta and names its method in headers; a 2025-11-25 one rides the
// session (if the server gave one).
func call(ctx context.Context, client *http.Client, t target, era, session string, id int) error {
	body := append([]byte(`{"jsonrpc":"2.0","id":`), strconv.Itoa(id)...)
	body = append(body, `,"method":"tools/call","params":{"name":"`+t.tool+`","arguments":{"text":"hello"}`...)
	if era == era2026 {
		body = append(body, `,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"ostiary-load","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`...)
	}
	body = append(body, "}}"...)
	req, err := newRequest(ctx, "POST", t, era, session, body)
	if err != nil {
		return err
	}
	if era == era2026 {
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", t.tool)
	}
	status, b, err := do(client, req)
	if err != nil {
		return err
	}
	if status != 200 || !bytes.Contains(b, []byte(`"echo":"hello"`)) {
		return fmt.Errorf("status %d: %.200s", status, b)
	}
	return nil
}

func newRequest(ctx context.Context, method string, t target, era, session string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if era != "" {
		req.Header.Set("Mcp-Protocol-Version", era)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	return req, nil
}

func do(client *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b, err
}

// openSession initializes as a 2025-11-25 client does and returns the
// session id (none from a stateless server).
func openSession(ctx context.Context, client *http.Client, t target) (string, error) {
	req, err := newRequest(ctx, "POST", t, "", "", []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ostiary-load","version":"1"}}}`))
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"protocolVersion":"2025-11-25"`)) {
		return "", fmt.Errorf("initialize: status %d: %.200s", resp.StatusCode, b)
	}
	id := resp.Header.Get("Mcp-Session-Id")
	req, err = newRequest(ctx, "POST", t, era2025, id, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return "", err
	}
	status, b, err := do(client, req)
	if err != nil {
		return "", err
	}
	if status != 202 && status != 200 {
		return "", fmt.Errorf("notifications/initialized: status %d: %.200s", status, b)
	}
	return id, nil
}

// closeSessions ends the sessions with DELETE, so that runs do not pile
// them up against the per-user cap; failures change no measurement.
func closeSessions(client *http.Client, t target, ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range ids {
		if id == "" {
			continue
		}
		if req, err := newRequest(ctx, "DELETE", t, era2025, id, nil); err == nil {
			do(client, req)
		}
	}
}
