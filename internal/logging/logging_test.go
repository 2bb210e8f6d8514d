package logging

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		"key ost_abcd1234efgh5678_s3cretpart used": "key ost_abcd1234efgh5678_[redacted] used",
		"Authorization: Bearer eyJhbGciOi.x.y":     "Authorization: Bearer [redacted]",
		"basic   dXNlcjpwYXNz trailing":            "basic   [redacted] trailing",
		"a host ost_ name, nothing secret":         "a host ost_ name, nothing secret",
		"two: ost_a_b and ost_c_d":                 "two: ost_a_[redacted] and ost_c_[redacted]",
		"bearer ost_kid_secret":                    "bearer [redacted]",
	} {
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every line of a request carries its id, from the context, unless it
// names one; credentials are scrubbed from the message and every value,
// attributes added with With included.
func TestHandler(t *testing.T) {
	var b bytes.Buffer
	log := New(&b, "json", slog.LevelInfo)
	ctx := WithRequestID(context.Background(), "req-1")
	log.InfoContext(ctx, "call ost_kid_secret1", "err", errors.New("upstream said Bearer tok123"), "list", []string{"ost_k_secret2"},
		slog.Group("g", "v", "ost_k_secret3"))
	log.With("key", "ost_k_secret4").InfoContext(ctx, "with")
	log.InfoContext(ctx, "explicit", "request_id", "req-2")
	log.With("request_id", "req-3").InfoContext(ctx, "explicit with")
	log.Info("no context")
	out := b.String()
	for _, s := range []string{"secret1", "secret2", "secret3", "secret4", "tok123"} {
		if strings.Contains(out, s) {
			t.Errorf("%s in %s", s, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	for i, want := range []string{`"request_id":"req-1"`, `"request_id":"req-1"`, `"request_id":"req-2"`, `"request_id":"req-3"`} {
		if !strings.Contains(lines[i], want) || strings.Count(lines[i], "request_id") != 1 {
			t.Errorf("line %d: %s, want one %s", i, lines[i], want)
		}
	}
	if strings.Contains(lines[4], "request_id") {
		t.Errorf("a line without a request: %s", lines[4])
	}
}

// A library's info lines are debug lines; its warnings stay warnings.
func TestLibrary(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var b bytes.Buffer
		log := slog.New(Library(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: level})))
		log.Info("server session connected", "session_id", "")
		log.Warn("keepalive failed")
		out := b.String()
		if level == slog.LevelInfo && (strings.Contains(out, "session connected") || !strings.Contains(out, "level=WARN msg=\"keepalive failed\"")) {
			t.Errorf("at info: %s", out)
		}
		if level == slog.LevelDebug && !strings.Contains(out, `level=DEBUG msg="server session connected"`) {
			t.Errorf("at debug: %s", out)
		}
	}
}
