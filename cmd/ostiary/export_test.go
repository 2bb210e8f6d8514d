package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/testutil"
)

// exportedSeqs reads the seqs of a JSON Lines export, and how many whoami
// records it holds (distinct).
func exportedSeqs(t *testing.T, path string) ([]uint64, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	var seqs []uint64
	whoami := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var v struct {
			Seq   uint64 `json:"seq"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s line %d is not a record: %q", path, len(seqs)+1, sc.Text())
		}
		seqs = append(seqs, v.Seq)
		if v.Event == "whoami" {
			whoami[v.Seq] = true
		}
	}
	return seqs, len(whoami)
}

// The SIEM export survives kill -9: the server is killed while it
// exports, started again, and the export file holds every record from
// the first to the last, the lines a crash may repeat being at most the
// batch in flight.
func TestExportResumesAfterKill9(t *testing.T) {
	bin := buildOstiary(t)
	dir := filepath.Join(t.TempDir(), "data")
	out := filepath.Join(t.TempDir(), "audit.jsonl")
	init := exec.Command(bin, "init", "--data", dir)
	init.Env = cleanEnv()
	b, err := init.CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, b)
	}
	admin := apiKeyRE.FindString(string(b))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := func() (*exec.Cmd, chan error) {
		c := exec.Command(bin, "serve", "--data", dir, "--listen", addr, "--export", "jsonl:file:"+out)
		c.Env = cleanEnv()
		buf := &lockedBuf{}
		c.Stdout, c.Stderr = buf, buf
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- c.Wait() }()
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL) })
		testutil.Eventually(t, 60*time.Second, func() bool { return strings.Contains(buf.String(), "serving on") }, "the server did not start:\n%s", buf)
		return c, exited
	}
	whoami := func(n int) {
		for range n {
			req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("whoami: %d", resp.StatusCode)
			}
		}
	}
	c, exited := start()
	whoami(300)
	testutil.Eventually(t, 30*time.Second, func() bool { _, n := exportedSeqs(t, out); return n >= 100 }, "the export did not start")
	syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // kill -9, mid-export
	<-exited

	c, exited = start()
	whoami(50)
	testutil.Eventually(t, 30*time.Second, func() bool { _, n := exportedSeqs(t, out); return n >= 350 }, "the export did not catch up after the restart")
	syscall.Kill(-c.Process.Pid, syscall.SIGINT)
	if err := <-exited; err != nil {
		t.Errorf("the restarted server did not stop cleanly: %v", err)
	}
	seqs, _ := exportedSeqs(t, out)
	seen := map[uint64]int{}
	var top uint64
	for _, s := range seqs {
		seen[s]++
		top = max(top, s)
	}
	for s := uint64(1); s <= top; s++ {
		if seen[s] == 0 {
			t.Fatalf("record %d is missing from the export (%d lines, up to %d)", s, len(seqs), top)
		}
	}
	if dup := len(seqs) - len(seen); dup > 500 {
		t.Errorf("%d lines repeated: more than the one batch in flight", dup)
	}
	t.Logf("%d lines for records 1–%d (%d repeated after the kill)", len(seqs), top, len(seqs)-len(seen))
}
