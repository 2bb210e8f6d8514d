package app_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/ostiary/ostiary/internal/cli"
	"github.com/ostiary/ostiary/internal/demo"
)

// TestMain lets this test binary serve as a stdio upstream: run with the
// argument demo-upstream it speaks MCP on stdin/stdout. Run with the
// argument ostiary it is the ostiary command (cmd/ostiary), for tests that
// kill a server the hard way.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "demo-upstream" {
		if err := demo.ServeStdio(context.Background()); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "trace-upstream" {
		if err := serveTraceUpstream(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "ostiary" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
