package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildOstiary builds this command into a temporary directory, as a user
// would with go build.
func buildOstiary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs it end to end")
	}
	bin := filepath.Join(t.TempDir(), "ostiary")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is this process's environment without OSTIARY_* variables, so
// that what a command does depends only on what it says.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OSTIARY_") {
			env = append(env, kv)
		}
	}
	return env
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The demo's banner prints commands a user copies into a shell: run the
// demo from a built binary and run every printed command through sh,
// exactly as printed. The one placeholder, APPROVAL_ID, is replaced by the
// id the held call printed, as the banner tells the user to; the curl
// command runs only where curl is installed.
func TestDemoCommandsRunAsPrinted(t *testing.T) {
	bin := buildOstiary(t)
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run the printed commands")
	}
	dir := filepath.Join(t.TempDir(), "demo data") // a space: the printed path must be quoted
	demo := exec.Command(bin, "demo", "--data", dir, "--listen", "127.0.0.1:0")
	demo.Env = cleanEnv()
	out, errb := &lockedBuf{}, &lockedBuf{}
	demo.Stdout, demo.Stderr = out, errb
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		demo.Process.Signal(os.Interrupt) // the demo's Ctrl-C, to the process this test started
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("demo exited with %v: %s", err, errb)
			}
		case <-time.After(30 * time.Second):
			demo.Process.Kill()
			<-exited
			t.Errorf("demo did not stop on an interrupt: %s", errb)
		}
	}
	t.Cleanup(stop)
	ready := regexp.MustCompile(`(?m)^  \S.* audit verify --data .*\n`)
	for deadline := time.Now().Add(60 * time.Second); !ready.MatchString(out.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("demo did not print its banner:\n%s\n%s", out, errb)
		}
	}
	banner := out.String()

	var cmds []string
	var cont string
	for _, l := range strings.Split(banner, "\n") {
		if cont != "" {
			cont += "\n" + l
			if !strings.HasSuffix(l, "\\") {
				cmds, cont = append(cmds, cont), ""
			}
			continue
		}
		c, ok := strings.CutPrefix(l, "  ")
		if !ok || !(strings.HasPrefix(c, "export ") || strings.HasPrefix(c, "OSTIARY_TOKEN=") || strings.HasPrefix(c, "curl ") || strings.HasPrefix(c, bin+" ")) {
			continue
		}
		if strings.HasSuffix(c, "\\") {
			cont = c
			continue
		}
		cmds = append(cmds, c)
	}
	if len(cmds) < 10 || !strings.HasPrefix(cmds[0], "export OSTIARY_ADDR=http://127.0.0.1:") {
		t.Fatalf("the banner's commands: %q\n%s", cmds, banner)
	}
	export, cmds := cmds[0], cmds[1:]
	verify := cmds[len(cmds)-1]
	if !strings.HasPrefix(verify, bin+" audit verify --data '") {
		t.Fatalf("the last command is not the verify: %q", verify)
	}
	cmds = cmds[:len(cmds)-1]

	sh := func(script string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, "sh", "-c", script)
		c.Env, c.Dir = cleanEnv(), t.TempDir()
		b, err := c.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("%s: did not finish: %s", script, b)
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return string(b), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return string(b), 0
	}
	idRE := regexp.MustCompile(`apr_[a-z2-7]{26}`)
	var approval string
	ran := 0
	for _, c := range cmds {
		if strings.HasPrefix(c, "curl ") {
			if _, err := exec.LookPath("curl"); err != nil {
				t.Logf("curl is not installed: not run: %s", c)
				continue
			}
		}
		if strings.Contains(c, "APPROVAL_ID") {
			if approval == "" {
				t.Fatalf("no approval id was printed before %q", c)
			}
			c = strings.Replace(c, "APPROVAL_ID", approval, 1)
		}
		want := 0
		if strings.Contains(c, "# bob: refused") || strings.Contains(c, ": held") {
			want = 1
		}
		got, code := sh(export + "\n" + c)
		ran++
		if code != want {
			t.Errorf("%s\nexit %d, want %d:\n%s", c, code, want, got)
		}
		if strings.Contains(c, "# bob: held") {
			approval = idRE.FindString(got)
		}
		switch {
		case strings.Contains(c, "customer_profile") && want == 0 && !strings.Contains(got, "Ada Lovelace"):
			t.Errorf("%s: %s", c, got)
		case strings.Contains(c, "# bob again: paid") && !strings.Contains(got, `"paid_eur":120`):
			t.Errorf("%s: %s", c, got)
		case strings.Contains(c, "warehouse.get_stock") && !strings.Contains(got, `"units":12`):
			t.Errorf("%s: %s", c, got)
		case strings.Contains(c, "# order-bot: held") && !idRE.MatchString(got):
			t.Errorf("%s: %s", c, got)
		case strings.HasPrefix(c, "curl ") && !strings.Contains(got, "A-1001"):
			t.Errorf("%s: %s", c, got)
		}
	}
	if ran < 8 {
		t.Errorf("only %d of the printed commands ran", ran)
	}
	stop()
	if got, code := sh(verify); code != 0 || !strings.Contains(got, "audit chain OK") {
		t.Errorf("%s: exit %d: %s", verify, code, got)
	}
}
