package tracing

import (
	"context"
	"strings"
	"testing"
)

// Off, tracing costs nothing: a nil Tracer starts no span, keeps the
// context and allocates nothing.
func TestOffAllocatesNothing(t *testing.T) {
	var tr *Tracer
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		c, s := tr.Start(ctx, SpanPolicy)
		if c != ctx || s.Recording() || s.Traceparent() != "" {
			t.Fatal("a nil tracer started something")
		}
		s.SetName("x")
		s.Fail("x")
		s.End()
		c, s = tr.StartRequest(ctx, "mcp tools/call", "id", "")
		s.End()
		_ = c
	}); n != 0 {
		t.Errorf("%v allocations with tracing off", n)
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// parseTraceparent takes exactly what W3C Trace Context version 00
// allows, lowercase, with valid (non-zero) ids.
func TestParseTraceparent(t *testing.T) {
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if sc, good := parseTraceparent(ok); !good || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsRemote() || !sc.IsSampled() {
		t.Errorf("%s: %v %v", ok, sc, good)
	}
	for _, bad := range []string{"", ok + " ", strings.ToUpper(ok), "01" + ok[2:], "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"} {
		if _, good := parseTraceparent(bad); good {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Whatever a client sends as traceparent or X-Request-ID, the parse and
// the trace id derivation neither panic nor yield an invalid id, and an
// accepted traceparent prints back as it came.
func FuzzTraceContext(f *testing.F) {
	for _, s := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "order-7", "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if sc, ok := parseTraceparent(s); ok {
			got := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
			if got != s {
				t.Errorf("%q parsed as %q", s, got)
			}
		}
		a, b := TraceIDOf(s), TraceIDOf(strings.Clone(s))
		if !a.IsValid() || a != b {
			t.Errorf("TraceIDOf(%q) invalid or not deterministic", s)
		}
	})
}
