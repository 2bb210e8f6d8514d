package app_test

import (
	"context"
	"os"
	"testing"

	"github.com/ostiary/ostiary/internal/demo"
)

// TestMain lets this test binary serve as a stdio upstream: run with the
// argument demo-upstream it speaks MCP on stdin/stdout.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "demo-upstream" {
		if err := demo.ServeStdio(context.Background()); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
