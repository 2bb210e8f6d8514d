package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// proc is a process the benchmark started: the load binary re-executed in
// one of its child modes (serve.go). It prints the address it serves on as
// the first line of its standard output; it ends when told to by signal,
// or when its standard input closes (the parent is gone).
type proc struct {
	name  string
	url   string // the first http:// address of its first line of output
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has been waited for
}

// spawn starts the load binary in a child mode and waits (bounded) for its
// address.
func spawn(ctx context.Context, name string, env []string, args ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{childFlag}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- s
		io.Copy(io.Discard, r) // until it exits
		cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case s := <-line:
		i := strings.Index(s, "http://")
		if i < 0 {
			p.stop()
			return nil, fmt.Errorf("the %s printed no address: %q", name, s)
		}
		p.url = strings.Fields(s[i:])[0]
		return p, nil
	case <-timer.C:
		p.stop()
		return nil, fmt.Errorf("the %s printed no address within 30s", name)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process by its PID: SIGTERM (and its standard input
// closed), then SIGKILL if it has not exited after 15 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuTicks is the CPU time a process has used (utime + stime, in clock
// ticks), from /proc/PID/stat; pid 0 is this process.
func cpuTicks(pid int) (int64, error) {
	name := "self"
	if pid != 0 {
		name = strconv.Itoa(pid)
	}
	b, err := os.ReadFile("/proc/" + name + "/stat")
	if err != nil {
		return 0, fmt.Errorf("the CPU time of each process comes from /proc (Linux): %w", err)
	}
	t, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/%s/stat: %w", name, err)
	}
	return t, nil
}

// parseStat returns utime + stime (fields 14 and 15) of a /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses: fields are counted after the last ')'.
func parseStat(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected format")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("unexpected format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// clockTicks is the unit of /proc/PID/stat's times, what sysconf
// (_SC_CLK_TCK) answers: the kernel passes it to every process in its
// auxiliary vector as AT_CLKTCK. Without it, 100 is assumed and said.
func clockTicks() (hz int64, source string) {
	const atNull, atClkTck = 0, 17
	b, err := os.ReadFile("/proc/self/auxv")
	word := int(unsafe.Sizeof(uintptr(0)))
	for i := 0; err == nil && i+2*word <= len(b); i += 2 * word {
		var k, v uint64
		if word == 8 {
			k, v = binary.NativeEndian.Uint64(b[i:]), binary.NativeEndian.Uint64(b[i+word:])
		} else {
			k, v = uint64(binary.NativeEndian.Uint32(b[i:])), uint64(binary.NativeEndian.Uint32(b[i+word:]))
		}
		if k == atNull {
			break
		}
		if k == atClkTck && v > 0 {
			return int64(v), "AT_CLKTCK"
		}
	}
	return 100, "assumed: AT_CLKTCK not readable"
}

// probeSync measures what one durable append costs on dir's disk: n times,
// write 4 KiB at the end of a file and fdatasync it.
func probeSync(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "fdatasync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := bytes.Repeat([]byte{0xA5}, 4096)
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := f.Write(block); err != nil {
			return 0, 0, err
		}
		if err := fdatasync(f); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// loadAverage is /proc/loadavg's first three fields, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
