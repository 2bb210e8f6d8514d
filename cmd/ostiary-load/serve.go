package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/cli"
)

// childFlag, as the first argument, runs one of the measured processes
// instead of the benchmark (not listed in -help: only spawn passes it):
//
//	-child upstream-2026         the fixture upstream, 2026-07-28 (stateless)
//	-child upstream-2025         the fixture upstream, 2025-11-25 (sessions)
//	-child proxy URL             a plain httputil.ReverseProxy to URL
//	-child ostiary DIR [PROFILE] `ostiary serve --data DIR` (cmd/ostiary's
//	                             main), with a CPU profile to PROFILE
//
// Each listens on 127.0.0.1:0 and prints its address on stdout.
const childFlag = "-child"

func child(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // the parent is gone
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "ostiary-load -child: which process?")
		return 2
	}
	var h http.Handler
	path := "/mcp"
	switch mode := args[0]; {
	case mode == "upstream-2026" && len(args) == 1:
		h = fixture(true)
	case mode == "upstream-2025" && len(args) == 1:
		h = fixture(false)
	case mode == "proxy" && len(args) == 2:
		u, err := url.Parse(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "ostiary-load -child proxy:", err)
			return 2
		}
		h, path = reverseProxy(u), u.Path
	case mode == "ostiary" && (len(args) == 2 || len(args) == 3):
		return serveOstiary(ctx, args[1:])
	default:
		fmt.Fprintf(os.Stderr, "ostiary-load -child: unknown %q\n", args)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ostiary-load -child:", err)
		return 1
	}
	s := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { <-ctx.Done(); s.Close() }()
	fmt.Printf("http://%s%s\n", ln.Addr(), path)
	if err := s.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "ostiary-load -child:", err)
		return 1
	}
	return 0
}

// fixture is a minimal MCP tool, echo, on the go-sdk's Streamable HTTP
// handler answering JSON: stateless, it is a 2026-07-28 server (each
// request on its own; it also answers 2025-11-25 requests without a
// session); otherwise a 2025-11-25 server holding a session per client.
func fixture(stateless bool) http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "load-fixture", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echo text."},
		func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, map[string]any, error) {
			return nil, map[string]any{"echo": a.Text}, nil
		})
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: stateless, JSONResponse: true})
}

// reverseProxy is the baseline: a plain reverse proxy, nothing checked.
func reverseProxy(u *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.Transport = &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64}
	rp.ErrorLog = log.New(io.Discard, "", 0) // requests cut at the end of a run are expected
	return rp
}

// serveOstiary runs what `ostiary serve --data DIR --listen 127.0.0.1:0`
// runs (cmd/ostiary's main is cli.Run), configured by the environment the
// parent passes; it prints "ostiary serving on URL …" on stdout.
func serveOstiary(ctx context.Context, args []string) int {
	if len(args) == 2 && args[1] != "" {
		f, err := os.Create(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "ostiary-load -child ostiary:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "ostiary-load -child ostiary:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	return cli.Run(ctx, []string{"serve", "--data", args[0], "--listen", "127.0.0.1:0"},
		strings.NewReader(""), os.Stdout, os.Stderr, os.Getenv)
}
