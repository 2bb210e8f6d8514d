package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A shell block of the README: its commands and its docs-test marker.
type readmeBlock struct {
	line   int // of the opening fence
	marker string
	lines  []string
}

var (
	markerRE  = regexp.MustCompile(`^# docs-test: (background|after stop|skip\b.*)$`)
	captureRE = regexp.MustCompile(`#.*→ ([A-Z][A-Z0-9_]*)\s*$`)
	apiKeyRE  = regexp.MustCompile(`ost_([a-z0-9]+)_[a-z0-9]+`)
)

// readmeBlocks extracts the ```sh blocks of a Markdown file.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	for i, l := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```sh":
			cur = &readmeBlock{line: i + 1}
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil && len(cur.lines) == 0 && cur.marker == "" && strings.HasPrefix(l, "# docs-test:"):
			m := markerRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("README.md:%d: unknown marker %q (background, after stop, skip — REASON)", i+1, l)
			}
			cur.marker = m[1]
		case cur != nil:
			if n := len(cur.lines); n > 0 && strings.HasSuffix(cur.lines[n-1], `\`) {
				cur.lines[n-1] += "\n" + l
			} else {
				cur.lines = append(cur.lines, l)
			}
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: a block that does not end", cur.line)
	}
	return blocks
}

// The README's shell blocks run as written, in order, in a fresh
// directory, the docs tested like code. What the test does beyond a
// reader at a terminal, all of it visible here:
//   - 'go run ./cmd/ostiary' and 'make build' use the binary built for the
//     test (make build copies it to bin/ostiary, as make build would build it);
//   - the server's address 127.0.0.1:8080 becomes a free port (and
//     OSTIARY_LISTEN says so to serve and demo, which default to 8080);
//   - each command runs in sh and must exit 0; exported variables carry
//     over to the next command, as in one terminal;
//   - '→ NAME' in a command's comment sets $NAME to the first API key the
//     command printed and $NAME_ID to its key id;
//   - '# docs-test: background' blocks are started and must print that they
//     serve; they are stopped with SIGINT (Ctrl-C) before the next
//     background block, before an 'after stop' block and at the end, and
//     must then exit 0; '# docs-test: skip — REASON' blocks are not run.
func TestReadme(t *testing.T) {
	bin := buildOstiary(t)
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the README's commands")
	}
	blocks := readmeBlocks(t, "../../README.md")
	work := t.TempDir()
	example, err := os.ReadFile("../../ostiary.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "ostiary.example.yaml"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	vars := map[string]string{}
	for _, kv := range cleanEnv() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	vars["OSTIARY_LISTEN"] = addr
	rewrite := func(cmd string) string {
		cmd = strings.ReplaceAll(cmd, "127.0.0.1:8080", addr)
		cmd = regexp.MustCompile(`(^|[\s;|&(])go run \./cmd/ostiary\b`).ReplaceAllString(cmd, "${1}"+shellQuote(bin))
		cmd = regexp.MustCompile(`^make build\b`).ReplaceAllString(cmd, "mkdir -p bin && cp "+shellQuote(bin)+" bin/ostiary")
		if regexp.MustCompile(`(^|[\s;|&(])(go|make) `).MatchString(cmd) {
			t.Fatalf("the README test runs only 'go run ./cmd/ostiary' and 'make build': %q", cmd)
		}
		return cmd
	}
	var servers []*bgServer
	stopServers := func() {
		for _, s := range servers {
			s.stop(t)
		}
		servers = nil
	}
	t.Cleanup(stopServers)
	ran, skipped := 0, 0
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b.marker, "skip"):
			if !strings.Contains(b.marker, "—") {
				t.Errorf("README.md:%d: a skipped block must say why (# docs-test: skip — REASON)", b.line)
			}
			skipped++
			continue
		case b.marker == "after stop", b.marker == "background":
			stopServers()
		}
		for _, l := range b.lines {
			if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
				continue
			}
			cmd := rewrite(l)
			if b.marker == "background" {
				servers = append(servers, startServer(t, b.line, cmd, work, vars))
				continue
			}
			out := runReadmeLine(t, b.line, cmd, work, vars)
			if m := captureRE.FindStringSubmatch(l); m != nil {
				k := apiKeyRE.FindStringSubmatch(out)
				if k == nil {
					t.Fatalf("README.md:%d: %q prints no API key for %s:\n%s", b.line, l, m[1], out)
				}
				vars[m[1]], vars[m[1]+"_ID"] = k[0], k[1]
			}
		}
		ran++
	}
	stopServers()
	if ran < 5 {
		t.Errorf("only %d blocks ran (%d skipped)", ran, skipped)
	}
	t.Logf("%d README blocks ran, %d skipped", ran, skipped)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func environ(vars map[string]string) []string {
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// runReadmeLine runs one command in sh in dir and returns its output; it
// must exit 0. Variables the command exports are kept in vars.
func runReadmeLine(t *testing.T, line int, cmd, dir string, vars map[string]string) string {
	t.Helper()
	state := filepath.Join(t.TempDir(), "env")
	script := cmd + "\nrc=$?\nenv > " + shellQuote(state) + "\nexit $rc\n"
	c := exec.Command("sh", "-c", script)
	c.Dir, c.Env = dir, environ(vars)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = c.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		c.Process.Kill()
		<-done
		t.Fatalf("README.md:%d: %q did not finish", line, cmd)
	}
	if err != nil {
		t.Fatalf("README.md:%d: %q: %v\n%s", line, cmd, err, out)
	}
	if env, err := os.ReadFile(state); err == nil {
		for _, kv := range strings.Split(string(env), "\n") {
			if k, v, ok := strings.Cut(kv, "="); ok && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
				vars[k] = v
			}
		}
	}
	return string(out)
}

// bgServer is a background command of the README (a server).
type bgServer struct {
	line   int
	cmd    string
	c      *exec.Cmd
	out    *lockedBuf
	exited chan error
}

// startServer starts cmd in its own process group and waits until it says
// it serves.
func startServer(t *testing.T, line int, cmd, dir string, vars map[string]string) *bgServer {
	t.Helper()
	s := &bgServer{line: line, cmd: cmd, out: &lockedBuf{}, exited: make(chan error, 1)}
	s.c = exec.Command("sh", "-c", "exec "+cmd) // exec: Ctrl-C reaches the server, not a shell
	s.c.Dir, s.c.Env = dir, environ(vars)
	s.c.Stdout, s.c.Stderr = s.out, s.out
	s.c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.c.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		if o := s.out.String(); strings.Contains(o, "serving on") || strings.Contains(o, "demo running") {
			return s
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("README.md:%d: %q exited before serving: %v\n%s", line, cmd, err, s.out)
		case <-deadline:
			syscall.Kill(-s.c.Process.Pid, syscall.SIGKILL)
			t.Fatalf("README.md:%d: %q did not start serving:\n%s", line, cmd, s.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGINT to the server's process group (Ctrl-C at its
// terminal) and wants a clean exit.
func (s *bgServer) stop(t *testing.T) {
	t.Helper()
	if s.c.Process == nil {
		return
	}
	syscall.Kill(-s.c.Process.Pid, syscall.SIGINT)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("README.md:%d: %q ended with %v after Ctrl-C:\n%s", s.line, s.cmd, err, lastLines(s.out.String(), 20))
		}
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.c.Process.Pid, syscall.SIGKILL)
		<-s.exited
		t.Errorf("README.md:%d: %q did not stop on Ctrl-C", s.line, s.cmd)
	}
	s.c.Process = nil
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
