package wal_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

const killEnv = "OSTIARY_WAL_KILL_DIR"

// TestKillChild is the process TestKill kills: it appends batches to the
// log in $OSTIARY_WAL_KILL_DIR and prints each acknowledged end.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killEnv)
	if dir == "" {
		t.Skip("run by TestKill")
	}
	l, err := wal.Open(dir, wal.Options{SegmentSize: 64 << 10})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	fmt.Println("open", l.Last())
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 0))
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if err := l.AppendBatch(batch(l.Last(), 1+r.IntN(64))); err != nil {
			fmt.Println("append:", err)
			os.Exit(1)
		}
		fmt.Println("ack", l.Last())
	}
	os.Exit(2) // never reached in a test that kills in time
}

// A process killed with SIGKILL at any moment loses no acknowledged batch;
// the next Open cuts what was half written and goes on.
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(9, 9))
	var acked uint64
	for cycle := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
		cmd.Env = append(os.Environ(), killEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill() // if the test fails before the kill
		sc := bufio.NewScanner(out)
		for n, stop := 0, 20+r.IntN(400); n < stop && sc.Scan(); n++ {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || (f[0] != "ack" && f[0] != "open") {
				t.Fatalf("cycle %d: the child said %q", cycle, sc.Text())
			}
			v, _ := strconv.ParseUint(f[1], 10, 64)
			if f[0] == "open" && v < acked {
				t.Fatalf("cycle %d: the child reopened the log at %d, %d were acknowledged", cycle, v, acked)
			}
			acked = max(acked, v)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		l, err := wal.Open(dir, wal.Options{SegmentSize: 64 << 10})
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if l.Last() < acked {
			t.Fatalf("cycle %d: %d frames after the kill, %d acknowledged", cycle, l.Last(), acked)
		}
		checkFrames(t, l, l.Last())
		l.Close()
	}
	if acked == 0 {
		t.Fatal("nothing was acknowledged")
	}
}
