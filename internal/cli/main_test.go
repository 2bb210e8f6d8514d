package cli

import (
	"context"
	"os"
	"testing"

	"github.com/ostiary/ostiary/internal/demo"
)

// TestMain lets this test binary stand in for the ostiary binary as the
// demo's stdio upstream ('ostiary demo-upstream'), which the demo starts
// with os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "demo-upstream" {
		if err := demo.ServeStdio(context.Background()); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
