// Package browser runs a real-browser scenario for a Go test:
// node runs a script of test/browser (playwright-core, installed there
// by 'npm ci'), which drives Debian's chromium against a server the test
// started on 127.0.0.1. The scenario writes one JSON result on stdout;
// each failed check, unexpected dialog or error fails the test.
//
// Without node, chromium or test/browser/node_modules the test is
// skipped, unless CI or OSTIARY_REQUIRE_BROWSER is set (.ci/run sets
// it), which makes the absence a failure.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timeout bounds one scenario run, browser start included, unless
// Scenario.Timeout says otherwise.
const Timeout = 60 * time.Second

// Scenario is one run: Script (a file of test/browser) or Source (inline
// JS, run from test/browser), Env added to node's environment, Timeout
// (0: the package's Timeout).
type Scenario struct {
	Script  string
	Source  string
	Env     map[string]string
	Timeout time.Duration
}

// Result is what a scenario reported.
type Result struct {
	OK          bool                       `json:"ok"`
	Checks      []Check                    `json:"checks"`
	Dialogs     []Dialog                   `json:"dialogs"`
	Screenshots []string                   `json:"screenshots"`
	PageErrors  []string                   `json:"page_errors"`
	Data        map[string]json.RawMessage `json:"data"`
	Error       string                     `json:"error"`
}

// Check is one assertion of the scenario.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Dialog is an alert, confirm or prompt a page opened.
type Dialog struct {
	Type     string `json:"type"`
	Message  string `json:"message"`
	URL      string `json:"url"`
	Expected bool   `json:"expected"`
}

var scriptName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*\.js$`)

// Run runs test/browser/script (a file name such as "selftest.js") with
// env added to the environment, and fails t on every failed check,
// unexpected dialog or error. OSTIARY_BROWSER_ARTIFACTS names the
// directory for screenshots: $OSTIARY_ARTIFACTS/<test name> when set
// (kept), else a t.TempDir (logged).
func Run(t testing.TB, script string, env map[string]string) Result {
	t.Helper()
	return Scenario{Script: script, Env: env}.Run(t)
}

// RunInline runs src as a scenario from test/browser (so
// require('./lib') works), like Run.
func RunInline(t testing.TB, src string, env map[string]string) Result {
	t.Helper()
	return Scenario{Source: src, Env: env}.Run(t)
}

// Run runs the scenario as Run and RunInline do.
func (s Scenario) Run(t testing.TB) Result {
	t.Helper()
	if (s.Script == "") == (s.Source == "") {
		t.Fatal("browser: a scenario has a Script or a Source, not both nor neither")
	}
	if s.Script != "" && !scriptName.MatchString(s.Script) {
		t.Fatalf("browser: script %q is not a file name of test/browser", s.Script)
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = Timeout
	}
	dir := Dir(t)
	if s.Script != "" {
		return run(t, dir, []string{filepath.Join(dir, s.Script)}, nil, s.Env, timeout)
	}
	return run(t, dir, []string{"-"}, strings.NewReader(s.Source), s.Env, timeout)
}

// Dir returns test/browser of the repository, skipping or failing (see
// the package comment) when node, chromium or node_modules is missing.
func Dir(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	dir := filepath.Join(root, "test", "browser")
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node is not on PATH")
	}
	if _, err := os.Stat(Chromium()); err != nil {
		missing = append(missing, Chromium()+" is missing (apt-get install chromium)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "playwright-core is not installed (make browser-deps)")
	}
	if len(missing) > 0 {
		msg := "browser tests cannot run: " + strings.Join(missing, "; ")
		if Required() {
			t.Fatal(msg + "; CI or OSTIARY_REQUIRE_BROWSER is set, so this is a failure")
		}
		t.Skip(msg)
	}
	return dir
}

// Required reports whether a missing browser is a failure.
func Required() bool {
	ci := os.Getenv("CI")
	return os.Getenv("OSTIARY_REQUIRE_BROWSER") != "" || (ci != "" && ci != "false" && ci != "0")
}

// Chromium is the browser: $OSTIARY_CHROMIUM, else Debian's.
func Chromium() string {
	if c := os.Getenv("OSTIARY_CHROMIUM"); c != "" {
		return c
	}
	return "/usr/bin/chromium"
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/ostiary/ostiary\n")) {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("the repository's go.mod is not above the working directory")
		}
		d = up
	}
}

func artifacts(t testing.TB) string {
	t.Helper()
	base := os.Getenv("OSTIARY_ARTIFACTS")
	if base == "" {
		d := t.TempDir()
		t.Logf("browser: screenshots in %s (set OSTIARY_ARTIFACTS to keep them)", d)
		return d
	}
	d := filepath.Join(base, regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatalf("browser: artefact directory: %v", err)
	}
	t.Logf("browser: screenshots in %s", d)
	return d
}

func run(t testing.TB, dir string, args []string, stdin *strings.Reader, env map[string]string, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = stdin
	}
	// TMPDIR holds the fresh chromium profile: removed with the test even
	// when the run was killed.
	cmd.Env = append(os.Environ(), "OSTIARY_BROWSER_ARTIFACTS="+artifacts(t), "OSTIARY_CHROMIUM="+Chromium(), "TMPDIR="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// node and the chromium it starts get a process group of their own:
	// on time-out, SIGTERM (playwright closes its browser) then SIGKILL
	// go to that group, by the PID this run started, and to nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever of the group outlived node
	}
	t.Logf("browser: %s in %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if stderr.Len() > 0 {
		t.Logf("browser: stderr:\n%s", stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("browser: scenario did not finish within %s (its process group was killed)", timeout)
	}
	var res Result
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if derr := dec.Decode(&res); derr != nil {
		t.Fatalf("browser: scenario printed no JSON result (%v; exit: %v)", derr, err)
	}
	if err != nil {
		t.Errorf("browser: node: %v", err)
	}
	report(t, res)
	return res
}

func report(t testing.TB, res Result) {
	t.Helper()
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("browser: check failed: %s %s", c.Name, c.Detail)
		}
	}
	for _, d := range res.Dialogs {
		if !d.Expected {
			t.Errorf("browser: unexpected %s dialog %q on %s", d.Type, d.Message, d.URL)
		}
	}
	if res.Error != "" {
		t.Errorf("browser: scenario error: %s", res.Error)
	}
	if !res.OK && !t.Failed() {
		t.Error("browser: scenario reported failure")
	}
	if len(res.Checks) == 0 && res.Error == "" {
		t.Error("browser: scenario made no check")
	}
}
