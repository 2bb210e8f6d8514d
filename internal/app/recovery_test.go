package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/recovery"
	"github.com/ostiary/ostiary/internal/testutil"
)

// serveChild runs 'ostiary serve' on dir in a child process (this test
// binary, see TestMain), waits until it serves, and returns its base URL
// and a function that kills it with SIGKILL and waits for it to exit.
func serveChild(t *testing.T, dir string) (url string, kill func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "ostiary", "serve", "--data", dir, "--listen", "127.0.0.1:0")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OSTIARY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cmd.Process.Kill() // SIGKILL: no stop, no final checkpoint
			cmd.Wait()
		})
	}
	t.Cleanup(kill)
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving on (http://\S+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case url = <-found:
		return url, kill
	case <-time.After(30 * time.Second):
		kill()
		t.Fatalf("the child server did not start: %s", stderr)
		return "", nil
	}
}

// post sends one 2026-07-28 tools/call with args (and extra members of
// its params) and returns the response body; a server killed while it
// answers makes it return what it got, if anything.
func post(url, key, tool, args, extra string) string {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + extra +
		`,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}}`
	req, _ := http.NewRequest("POST", url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range modernHeaders("tools/call", tool) {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// A server killed (SIGKILL) with calls under way: at the next start,
// before it serves, each call that went upstream without its outcome on
// record gets a tool-result record with outcome unknown-after-crash,
// citing its decision and the start. Under way were a 2025-era session's
// call and a 2026-07-28 client's call, both waiting in the upstream, and
// a 2026-07-28 call waiting on its client's answer, continued once without
// one (a second decision, attached to the same call); a call that ended
// before the kill has its own outcome. So: three marks, none for the
// continuation, none for the ended call. The chain verifies, 'audit query
// --outcome unknown-after-crash' lists them, and neither a second crash
// nor a graceful restart adds any.
func TestCrashMarksCallsUnderWay(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	gate := up.AddGate()
	t.Cleanup(func() { close(gate) }) // before the upstream closes: it waits for its handlers
	up.AddAsker()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	allowQuestions(t, s, "fin.ask", true, false)
	setup(t, s, "fin-alice", []string{"invoke:fin.*"}, "alice", false)
	alice, aliceKey := newKey(t, s, map[string]any{"user": "alice"})
	s.Stop()
	if stop := records(t, s, audit.Query{Event: audit.EventServerStop}); len(stop) != 1 || stop[0].Detail[recovery.OpenAtStop] != json.Number("0") {
		t.Fatalf("the graceful stop's record: %+v", stop)
	}

	url, kill := serveChild(t, s.Dir)
	child := *s
	child.URL = url
	if m := post(url, alice, "fin.lookup", `{"id":"1"}`, ""); !strings.Contains(m, "Ada Lovelace") {
		t.Fatalf("a call that ends before the crash: %s", m)
	}
	asked := post(url, alice, "fin.ask", "{}", "")
	state := regexp.MustCompile(`"requestState":"([^"]+)"`).FindStringSubmatch(asked)
	if state == nil || !strings.Contains(asked, "input_required") {
		t.Fatalf("the upstream's question did not reach the client: %s", asked)
	}
	if again := post(url, alice, "fin.ask", "{}", `,"requestState":"`+state[1]+`"`); !strings.Contains(again, "input_required") {
		t.Fatalf("continued without an answer: %s", again)
	}
	cs, err := child.Client(t, alice, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	// Then (a question is relayed only while its user has one call on the
	// upstream) two calls that wait in the upstream.
	var inFlight sync.WaitGroup
	inFlight.Go(func() { cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.gate"}) })
	inFlight.Go(func() { post(url, alice, "fin.gate", "{}", "") })
	testutil.Eventually(t, 10*time.Second, func() bool {
		n := 0
		for _, c := range up.Calls() {
			if c.Tool == "gate" {
				n++
			}
		}
		return n == 2
	}, "the two gate calls never reached the upstream")
	kill()
	inFlight.Wait()

	s.Restart(nil)
	decisions := map[string][]audit.Record{}
	for _, d := range records(t, s, audit.Query{Event: "tool-call"}) {
		if d.Outcome == audit.Success {
			decisions[d.Target] = append(decisions[d.Target], d)
		}
	}
	if len(decisions["tool:fin.gate"]) != 2 || len(decisions["tool:fin.ask"]) != 2 || len(decisions["tool:fin.lookup"]) != 1 {
		t.Fatalf("decisions on record: %+v", decisions)
	}
	asks := decisions["tool:fin.ask"] // newest first: the continuation, then the call
	if asks[0].Detail["parked"] != true || asks[1].Detail["parked"] != nil {
		t.Fatalf("the ask decisions: %+v", asks)
	}
	want := map[string]audit.Record{} // by seq
	for _, d := range append(decisions["tool:fin.gate"], asks[1]) {
		want[strconv.FormatUint(d.Seq, 10)] = d
	}
	starts := records(t, s, audit.Query{Event: audit.EventServerStart, Limit: 1})
	marks := records(t, s, audit.Query{Outcome: audit.UnknownAfterCrash})
	if len(marks) != 3 {
		t.Fatalf("%d unknown-after-crash records, want 3: %+v", len(marks), marks)
	}
	for _, m := range marks {
		cited := fmt.Sprint(m.Detail["decision_seq"])
		d, ok := want[cited]
		switch {
		case !ok:
			t.Errorf("a mark of a decision that needs none: %+v", m)
		case m.Event != "tool-result" || m.Reason != recovery.ReasonNoOutcome || m.Actor != "alice" || m.KeyID != aliceKey ||
			m.RequestID != d.RequestID || m.Target != d.Target || m.Remote != d.Remote:
			t.Errorf("mark %+v of decision %+v", m, d)
		case m.Detail["server_start"] != audit.FormatTime(starts[0].Time) || m.Seq > starts[0].Seq:
			t.Errorf("mark %d cites the start %v; the start is %d at %s", m.Seq, m.Detail["server_start"], starts[0].Seq, audit.FormatTime(starts[0].Time))
		}
		delete(want, cited)
	}
	if starts[0].Detail["unknown_after_crash"] != json.Number("3") {
		t.Errorf("the start's record: %v", starts[0].Detail)
	}
	if !strings.Contains(s.Log.String(), "marked unknown-after-crash") {
		t.Errorf("the operational log does not say: %s", s.Log)
	}

	var page adminapi.AuditPage
	code, stdout, stderr := runCLI(s, s.AdminKey, "audit", "query", "--outcome", "unknown-after-crash", "--json")
	if code != 0 || json.Unmarshal([]byte(stdout), &page) != nil || len(page.Records) != 3 || page.Records[0].Event != "tool-result" {
		t.Errorf("audit query --outcome unknown-after-crash: exit %d, %s %s", code, stdout, stderr)
	}
	verify := func(when string) {
		t.Helper()
		if code, stdout, stderr := runCLI(s, "", "audit", "verify", "--data", s.Dir); code != 0 || !strings.Contains(stdout, "audit chain OK") {
			t.Errorf("audit verify %s: exit %d, %s %s", when, code, stdout, stderr)
		}
	}
	verify("after the crash")

	// A second crash, with nothing under way, then a graceful restart:
	// nothing more is marked.
	s.Stop()
	_, kill = serveChild(t, s.Dir)
	kill()
	s.Restart(nil)
	s.Stop()
	s.Restart(nil)
	if marks := records(t, s, audit.Query{Outcome: audit.UnknownAfterCrash}); len(marks) != 3 {
		t.Errorf("after two more starts, %d unknown-after-crash records, want 3", len(marks))
	}
	if starts := records(t, s, audit.Query{Event: audit.EventServerStart, Limit: 3}); len(starts) != 3 ||
		starts[0].Detail["unknown_after_crash"] != json.Number("0") || starts[1].Detail["unknown_after_crash"] != json.Number("0") {
		t.Errorf("the later starts: %+v", starts)
	}
	verify("after the restarts")
}

// A graceful stop with a 2026-07-28 call under way cuts it and records
// how it ended (gateway-stopping) before it records the stop, which then
// says no decision is open: the next start reads nothing before the stop
// and has nothing to mark. (TestGracefulStopCutsSessionCalls: a
// 2025-era session's call alike.)
func TestGracefulStopLeavesNothingToMark(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	gate := up.AddGate()
	t.Cleanup(func() { close(gate) })
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "fin-alice", []string{"invoke:fin.*"}, "alice", false)
	alice, _ := newKey(t, s, map[string]any{"user": "alice"})
	var inFlight sync.WaitGroup
	inFlight.Go(func() { post(s.URL, alice, "fin.gate", "{}", "") })
	testutil.Eventually(t, 10*time.Second, func() bool { return len(up.Calls()) == 1 }, "the call never reached the upstream")
	s.Stop()
	inFlight.Wait()
	out := records(t, s, audit.Query{Event: "tool-result"})
	stop := records(t, s, audit.Query{Event: audit.EventServerStop})
	if len(out) != 1 || out[0].Reason != "gateway-stopping" || len(stop) != 1 || out[0].Seq > stop[0].Seq {
		t.Fatalf("the cut call's outcome %+v, the stop %+v", out, stop)
	}
	if stop[0].Detail[recovery.OpenAtStop] != json.Number("0") {
		t.Fatalf("the stop's record: %+v", stop[0])
	}
	s.Restart(nil)
	if marks := records(t, s, audit.Query{Outcome: audit.UnknownAfterCrash}); len(marks) != 0 {
		t.Errorf("marked after a graceful stop: %+v", marks)
	}
}

// TestGracefulStopCutsSessionCalls: a 2025-era session's call under way is
// cut by the stop like a 2026-07-28 one, its outcome recorded before the
// stop's record, which leaves nothing open. (The SDK runs a session's
// calls in the session's context, not the request's, so cancelling the
// requests' base context alone does not reach them.)
func TestGracefulStopCutsSessionCalls(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	gate := up.AddGate()
	t.Cleanup(func() { close(gate) })
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "fin-alice", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, "2025-11-25")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.gate"})
		close(done)
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return len(up.Calls()) == 1 }, "the call never reached the upstream")
	s.Stop()
	out := records(t, s, audit.Query{Event: "tool-result"})
	stop := records(t, s, audit.Query{Event: audit.EventServerStop})
	if len(out) != 1 || out[0].Reason != "gateway-stopping" || len(stop) != 1 || out[0].Seq > stop[0].Seq {
		t.Fatalf("the cut call's outcome %+v, the stop %+v", out, stop)
	}
	if stop[0].Detail[recovery.OpenAtStop] != json.Number("0") {
		t.Errorf("the stop's record: %+v", stop[0])
	}
	// The client's call ends with the stop (told the gateway is stopping
	// or, the server being gone, a transport error in the SDK's words).
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("the client's call did not end with the stop")
	}
}
