package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
)

// runTTY runs as if stderr were a terminal.
func runTTY(vars map[string]string, args ...string) result {
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }, now: time.Now,
		tty: func(w io.Writer) bool { return w == &errb }}
	code := e.run(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

// mcp call shows the call's progress on a terminal and nothing elsewhere;
// --timeout gives up, says so, and the call is cancelled upstream.
func TestMCPCallProgressAndTimeout(t *testing.T) {
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddSlow()
	admin := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	run(admin, "upstreams", "add", "fin", "--url", up.URL, "--allow-private").mustOK(t)
	run(admin, "roles", "create", "caller", "--grant", "invoke:fin.*").mustOK(t)
	run(admin, "users", "create", "alice", "--role", "caller").mustOK(t)
	var k adminapi.CreatedKey
	if err := json.Unmarshal([]byte(run(admin, "keys", "create", "--user", "alice", "--json").mustOK(t).stdout), &k); err != nil {
		t.Fatal(err)
	}
	alice := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": k.APIKey}

	r := run(alice, "mcp", "call", "fin.slow", "--timeout", "3s")
	if r.code != ExitError || !strings.Contains(r.stderr, "no answer within --timeout 3s") {
		t.Fatalf("a call past --timeout: %+v", r)
	}
	if strings.Count(r.stderr, "\n") != 1 || strings.Contains(r.stderr, "\r") || strings.Contains(r.stderr, "step") {
		t.Errorf("progress written to a stderr that is not a terminal: %q", r.stderr)
	}
	waitCancelled(t, up)

	r = runTTY(alice, "mcp", "call", "fin.slow", "--timeout", "3s")
	if r.code != ExitError || !strings.Contains(r.stderr, "calling fin.slow") || !strings.Contains(r.stderr, "step 2/2") {
		t.Fatalf("on a terminal: %+v", r)
	}
	// The status line is cleared before the error is printed.
	if i := strings.LastIndex(r.stderr, "\r\033[K"); i < 0 || !strings.HasPrefix(r.stderr[i+4:], "ostiary: no answer within --timeout 3s") {
		t.Errorf("the status line is not cleared before the error: %q", r.stderr)
	}
	waitCancelled(t, up)
	// A call that answers prints its result on stdout, stderr clean of progress.
	r = runTTY(alice, "mcp", "call", "fin.lookup", `{"id":"C-1"}`)
	if r.code != ExitOK || !strings.Contains(r.stdout, "Ada Lovelace") || strings.Contains(r.stdout, "\r") {
		t.Errorf("a call that answers: %+v", r)
	}
}

func waitCancelled(t *testing.T, up *apptest.Upstream) {
	t.Helper()
	select {
	case tool := <-up.Cancelled():
		if tool != "slow" {
			t.Errorf("cancelled %s", tool)
		}
	case <-time.After(15 * time.Second):
		t.Error("the upstream's call was not cancelled after --timeout")
	}
}

// upstreams add to an upstream that takes the connection and never
// answers: --timeout gives up and says what may have happened; the wait
// shows on a terminal only.
func TestUpstreamsAddTimeout(t *testing.T) {
	s := apptest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { // before the server stops: its sync fails at once
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	admin := map[string]string{"OSTIARY_ADDR": s.URL, "OSTIARY_TOKEN": s.AdminKey}
	url := "http://" + ln.Addr().String() + "/mcp"
	r := run(admin, "upstreams", "add", "mute", "--url", url, "--allow-private", "--timeout", "1s")
	if r.code != ExitError || !strings.Contains(r.stderr, "no answer within --timeout 1s") || !strings.Contains(r.stderr, "upstreams list") {
		t.Fatalf("upstreams add past --timeout: %+v", r)
	}
	if strings.Contains(r.stderr, "\r") || strings.Contains(r.stderr, "adding upstream") {
		t.Errorf("progress on a stderr that is not a terminal: %q", r.stderr)
	}
	r = runTTY(admin, "upstreams", "add", "mute2", "--url", url, "--allow-private", "--timeout", "1s")
	if r.code != ExitError || !strings.Contains(r.stderr, "adding upstream mute2 and listing its tools") || !strings.Contains(r.stderr, "\r\033[K") {
		t.Errorf("on a terminal: %+v", r)
	}
	if r := run(admin, "upstreams", "add", "x", "--url", url, "--timeout", "soon"); r.code != ExitUsage {
		t.Errorf("a bad --timeout: %+v", r)
	}
}
