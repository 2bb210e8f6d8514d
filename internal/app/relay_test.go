//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still relayed; these tests prove it.

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

type inbox struct {
	mu       sync.Mutex
	progress []*mcp.ProgressNotificationParams
	logs     []*mcp.LoggingMessageParams
}

func (b *inbox) options() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			b.mu.Lock()
			b.progress = append(b.progress, r.Params)
			b.mu.Unlock()
		},
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			b.mu.Lock()
			b.logs = append(b.logs, r.Params)
			b.mu.Unlock()
		},
	}
}

func (b *inbox) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.progress), len(b.logs)
}

// Progress and log messages of a call reach the client that made it, under
// its own progress token, and no one else; cancelling the call cancels it
// upstream.
func TestGatewayRelaysProgressLogsAndCancellation(t *testing.T) {
	t.Parallel()
	s, up, aliceKey := withFin(t, false, (*apptest.Upstream).AddSlow, "alice", "invoke:fin.*")
	aliceKey2, _ := newKey(t, s, map[string]any{"user": "alice"})

	var mine, other inbox
	alice, err := s.ClientWith(t, aliceKey, "2025-11-25", mine.options())
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := s.ClientWith(t, aliceKey2, "2025-11-25", other.options())
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range []*mcp.ClientSession{alice, bystander} {
		if err := cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "fin.slow", Meta: mcp.Meta{"progressToken": "mine-1"}})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, l := mine.counts()
		if p == 2 && l == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayed %d progress and %d log messages, want 2 and 1", p, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mine.mu.Lock()
	if mine.progress[0].ProgressToken != "mine-1" || mine.progress[1].Progress != 2 || mine.logs[0].Data != "working on it" {
		t.Errorf("relayed %+v / %+v", mine.progress[0], mine.logs[0])
	}
	mine.mu.Unlock()
	cancel()
	select {
	case <-up.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the call did not cancel it upstream")
	}
	<-done
	if p, l := other.counts(); p != 0 || l != 0 {
		t.Errorf("another client received %d progress and %d log messages", p, l)
	}
}

// In the 2026-07-28 era progress arrives on the request's own stream.
func TestGatewayRelaysProgressModern(t *testing.T) {
	t.Parallel()
	s, up, key := withFin(t, true, (*apptest.Upstream).AddSlow, "alice", "invoke:fin.*")
	var mine inbox
	cs, err := s.ClientWith(t, key, "", mine.options())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cs.CallTool(ctx, &mcp.CallToolParams{Name: "fin.slow", Meta: mcp.Meta{"progressToken": "m-1"}})
	deadline := time.Now().Add(10 * time.Second)
	for p, _ := mine.counts(); p < 2; p, _ = mine.counts() {
		if time.Now().After(deadline) {
			t.Fatalf("relayed %d progress notifications, want 2", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-up.Cancelled():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the call did not cancel it upstream")
	}
}

// An upstream's elicitation during a call reaches the client that made the
// call, and is audited.
func TestGatewayRelaysElicitation(t *testing.T) {
	t.Parallel()
	s, _, key := withFin(t, false, (*apptest.Upstream).AddAsker, "alice", "invoke:fin.ask")
	allowQuestions(t, s, "fin.ask", true, false) // its upstream asks the user
	var asked int
	alice, err := s.ClientWith(t, key, "2025-11-25", &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked++
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask"})
	if err != nil || res.IsError {
		t.Fatalf("ask: %+v %v", res, err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if asked != 1 || !strings.Contains(string(b), `"name":"Ada"`) {
		t.Errorf("elicitation relayed %d times, result %s", asked, b)
	}
	recs := records(t, s, audit.Query{Event: "upstream-request"})
	if len(recs) != 1 || recs[0].Actor != "alice" || recs[0].Outcome != audit.Success || recs[0].Detail["method"] != "elicitation/create" {
		t.Errorf("upstream-request records: %+v", recs)
	}
}

// A 2026-07-28 upstream's input_required result reaches a 2026-07-28
// client as the upstream asked it, with a requestState only this caller
// can continue this call with; the answers and the upstream's own state go
// back to the upstream; every leg is governed and on record.
func TestGatewayRelaysInputRequired(t *testing.T) {
	t.Parallel()
	s, up, alice := withFin(t, true, (*apptest.Upstream).AddConfirm, "alice", "invoke:fin.confirm")
	allowQuestions(t, s, "fin.confirm", true, false) // its upstream asks the user
	setup(t, s, "fin-bob", []string{"invoke:fin.confirm"}, "bob", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	const caps = `{"elicitation":{}}`
	call := func(key, args, extra, caps string) (int, map[string]any) {
		t.Helper()
		meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps + `}`
		r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.confirm","arguments":`+args+extra+`,`+meta+`}}`,
			modernHeaders("tools/call", "fin.confirm"))
		return r.Status, rpcMessage(t, r)
	}
	// Leg 1: the upstream's question, under its own id, and Ostiary's state.
	status, m := call(alice, `{"amount":5}`, "", caps)
	res, _ := m["result"].(map[string]any)
	reqs, _ := res["inputRequests"].(map[string]any)
	state, _ := res["requestState"].(string)
	if status != 200 || res["resultType"] != "input_required" || reqs["user_name"] == nil || !strings.HasPrefix(state, "ost1.") || strings.Contains(state, "st-1") {
		t.Fatalf("leg 1: %d %v", status, m)
	}
	answers := `,"inputResponses":{"user_name":{"action":"accept","content":{"name":"Ada"}}},"requestState":"` + state + `"`
	before := len(up.Calls())
	// Refused before the upstream: a tampered state, another caller's
	// replay, other arguments.
	for _, c := range []struct{ name, key, args, extra string }{
		{"tampered", alice, `{"amount":5}`, strings.Replace(answers, state, state[:len(state)-2]+"xx", 1)},
		{"replayed by bob", bob, `{"amount":5}`, answers},
		{"other arguments", alice, `{"amount":500}`, answers},
	} {
		status, m := call(c.key, c.args, c.extra, caps)
		e, _ := m["error"].(map[string]any)
		if status != 400 || e["code"] != float64(-32602) || !strings.Contains(fmt.Sprint(e["message"]), "invalid requestState") {
			t.Errorf("%s: %d %v", c.name, status, m)
		}
	}
	if n := len(up.Calls()) - before; n != 0 {
		t.Errorf("refused continuations reached the upstream %d times", n)
	}
	// Leg 2: the answer completes the call; the upstream got its own state.
	status, m = call(alice, `{"amount":5}`, answers, caps)
	res, _ = m["result"].(map[string]any)
	if status != 200 || res["resultType"] != "complete" || !strings.Contains(fmt.Sprint(res["structuredContent"]), "Hello, Ada! 5 confirmed.") {
		t.Fatalf("leg 2: %d %v", status, m)
	}
	calls := up.Calls()
	if last := calls[len(calls)-1]; last.State != "st-1" || last.Identity.Subject != "alice" {
		t.Errorf("upstream saw state %q as %q", last.State, last.Identity.Subject)
	}
	// A client that cannot answer an elicitation is told so (-32021).
	status, m = call(alice, `{"amount":5}`, "", `{}`)
	e, _ := m["error"].(map[string]any)
	data, _ := e["data"].(map[string]any)
	if need, _ := data["requiredCapabilities"].(map[string]any); status != 400 || e["code"] != float64(-32021) || need["elicitation"] == nil {
		t.Errorf("no elicitation capability: %d %v", status, m)
	}
	// On record: the question, the refusals, the continuation.
	results := records(t, s, audit.Query{Event: "tool-result"})
	var asked, continued, refused int
	for _, r := range results {
		if fmt.Sprint(r.Detail["input_required"]) == "[user_name]" {
			asked++
		}
	}
	for _, r := range records(t, s, audit.Query{Event: "tool-call"}) {
		if r.Detail["continues"] == true && len(fmt.Sprint(r.Detail["input_sha256"])) == 64 {
			continued++
		}
		if r.Reason == "request-state-invalid" {
			refused++
		}
	}
	if asked != 2 || continued != 1 || refused != 3 {
		t.Errorf("records: %d questions, %d continuations, %d refusals", asked, continued, refused)
	}
}

// The official SDK's 2026-07-28 client answers the relayed question with
// its own elicitation handler: the whole round trip through the gateway.
func TestGatewayInputRequiredWithSDKClient(t *testing.T) {
	t.Parallel()
	s, _, key := withFin(t, true, (*apptest.Upstream).AddConfirm, "alice", "invoke:fin.confirm")
	allowQuestions(t, s, "fin.confirm", true, false) // its upstream asks the user
	asked := 0
	cs, err := s.ClientWith(t, key, "", &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked++
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Grace"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.confirm", Arguments: map[string]any{"amount": 7}})
	if err != nil || res.IsError {
		t.Fatalf("%+v %v", res, err)
	}
	if b, _ := json.Marshal(res.StructuredContent); asked != 1 || !strings.Contains(string(b), "Hello, Grace! 7 confirmed.") {
		t.Errorf("asked %d times, result %s", asked, b)
	}
}

// prompts/get relays input_required too; a state is bound to its prompt
// and arguments (a tool call cannot use it, nor other arguments).
func TestGatewayRelaysInputRequiredForPrompts(t *testing.T) {
	t.Parallel()
	s, _, alice := withFin(t, true, (*apptest.Upstream).AddBrief, "alice", "invoke:fin.brief", "invoke:fin.lookup")
	allowByPolicy(t, s, `request.target == "prompt:fin.brief" && request.kind == "elicitation"`) // prompts carry no labels
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}`
	get := func(topic, extra string) (int, map[string]any) {
		t.Helper()
		r := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"fin.brief","arguments":{"topic":"`+topic+`"}`+extra+`,`+meta+`}}`,
			modernHeaders("prompts/get", "fin.brief"))
		return r.Status, rpcMessage(t, r)
	}
	status, m := get("tea", "")
	res, _ := m["result"].(map[string]any)
	state, _ := res["requestState"].(string)
	if status != 200 || res["resultType"] != "input_required" || !strings.HasPrefix(state, "ost1.") {
		t.Fatalf("leg 1: %d %v", status, m)
	}
	answers := `,"inputResponses":{"user_context":{"action":"accept","content":{"context":"the board"}}},"requestState":"` + state + `"`
	if status, m := get("coffee", answers); status != 400 || !strings.Contains(fmt.Sprint(m["error"]), "invalid requestState") {
		t.Errorf("other arguments: %d %v", status, m)
	}
	// A state for the prompt with {"id":"7"} does not continue the tool
	// call with the same arguments.
	r := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"fin.brief","arguments":{"id":"7"},`+meta+`}}`,
		modernHeaders("prompts/get", "fin.brief"))
	idState, _ := rpcMessage(t, r)["result"].(map[string]any)["requestState"].(string)
	r = rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"7"},"requestState":"`+idState+`",`+meta+`}}`,
		modernHeaders("tools/call", "fin.lookup"))
	if m := rpcMessage(t, r); idState == "" || !strings.Contains(fmt.Sprint(m["error"]), "issued for another call") {
		t.Errorf("a prompt's state continued a tool call: %d %v", r.Status, m)
	}
	status, m = get("tea", answers)
	if status != 200 || !strings.Contains(fmt.Sprint(m["result"]), "Brief on tea for the board") {
		t.Errorf("leg 2: %d %v", status, m)
	}
}

// A session-based upstream's elicitation during a 2026-07-28 client's call
// (which takes no requests) reaches the client as an input_required result;
// the client's next call answers it, and the call goes on to its result.
func TestGatewayBridgesQuestionsToModernClients(t *testing.T) {
	t.Parallel()
	s, _, alice := withFin(t, false, (*apptest.Upstream).AddAsker, "alice", "invoke:fin.ask")
	allowQuestions(t, s, "fin.ask", true, false) // its upstream asks the user
	setup(t, s, "fin-bob", []string{"invoke:fin.ask"}, "bob", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	call := func(key, caps, extra string) map[string]any {
		t.Helper()
		meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps + `}`
		r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.ask","arguments":{}`+extra+`,`+meta+`}}`,
			modernHeaders("tools/call", "fin.ask"))
		return rpcMessage(t, r)
	}
	question := func(m map[string]any) (id, state string) {
		t.Helper()
		res, _ := m["result"].(map[string]any)
		reqs, _ := res["inputRequests"].(map[string]any)
		for k, v := range reqs {
			if q, _ := v.(map[string]any); q["method"] == "elicitation/create" {
				id = k
			}
		}
		state, _ = res["requestState"].(string)
		if res["resultType"] != "input_required" || id == "" || !strings.HasPrefix(state, "ost1.") {
			t.Fatalf("no question: %v", m)
		}
		return id, state
	}
	id, first := question(call(alice, `{"elicitation":{}}`, ""))
	// Not answered: asked again, under a new state (each state continues
	// one request). Another user: refused.
	id2, state := question(call(alice, `{"elicitation":{}}`, `,"requestState":"`+first+`"`))
	if id2 != id || state == first {
		t.Errorf("asked again as %s, first as %s", id2, id)
	}
	if m := call(alice, `{"elicitation":{}}`, `,"requestState":"`+first+`"`); !strings.Contains(fmt.Sprint(m["error"]), "already used") {
		t.Errorf("a state continued twice: %v", m)
	}
	if m := call(bob, `{"elicitation":{}}`, `,"requestState":"`+state+`"`); !strings.Contains(fmt.Sprint(m["error"]), "issued to another caller") {
		t.Errorf("bob continued alice's call: %v", m)
	}
	m := call(alice, `{"elicitation":{}}`, `,"inputResponses":{"`+id+`":{"action":"accept","content":{"name":"Ada"}}},"requestState":"`+state+`"`)
	if res, _ := m["result"].(map[string]any); res["resultType"] != "complete" || !strings.Contains(fmt.Sprint(res["structuredContent"]), "Ada") {
		t.Fatalf("answered: %v", m)
	}
	// The state is spent.
	if m := call(alice, `{"elicitation":{}}`, `,"inputResponses":{"`+id+`":{"action":"accept","content":{"name":"Eve"}}},"requestState":"`+state+`"`); !strings.Contains(fmt.Sprint(m["error"]), "already used") {
		t.Errorf("a spent state continued: %v", m)
	}
	// A client that declares no elicitation is not asked.
	if m := call(alice, `{}`, ""); !strings.Contains(fmt.Sprint(m), "isError:true") {
		t.Errorf("no capability: %v", m)
	}
	recs := records(t, s, audit.Query{Event: "upstream-request"})
	if len(recs) != 2 || recs[1].Detail["via"] != "input_required" || recs[1].Outcome != audit.Success ||
		recs[0].Reason != "client-capability-missing" {
		t.Errorf("upstream-request records: %+v", recs)
	}
	results := records(t, s, audit.Query{Event: "tool-result"})
	if len(results) != 2 || results[1].Outcome != audit.Success || results[1].Actor != "alice" {
		t.Errorf("tool-result records: %+v", results)
	}
}

// The official SDK's 2026-07-28 client answers a session-based upstream's
// elicitation with its own handler, through the bridge.
func TestGatewayBridgesQuestionsToSDKClient(t *testing.T) {
	t.Parallel()
	s, _, key := withFin(t, false, (*apptest.Upstream).AddAsker, "alice", "invoke:fin.ask")
	allowQuestions(t, s, "fin.ask", true, false) // its upstream asks the user
	asked := 0
	cs, err := s.ClientWith(t, key, "", &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked++
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Grace"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask"})
	if err != nil || res.IsError {
		t.Fatalf("%+v %v", res, err)
	}
	if b, _ := json.Marshal(res.StructuredContent); asked != 1 || !strings.Contains(string(b), "Grace") {
		t.Errorf("asked %d times, result %s", asked, b)
	}
}

// The other bridge: a 2025-11-25 client (which takes requests) calling a
// 2026-07-28 upstream that asks with input_required is asked directly,
// through its session, and the call completes.
func TestGatewayAnswersInputRequiredForLegacyClients(t *testing.T) {
	t.Parallel()
	s, up, key := withFin(t, true, (*apptest.Upstream).AddConfirm, "alice", "invoke:fin.confirm")
	allowQuestions(t, s, "fin.confirm", true, false) // its upstream asks the user
	asked := 0
	cs, err := s.ClientWith(t, key, "2025-11-25", &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked++
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Edsger"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.confirm", Arguments: map[string]any{"amount": 3}})
	if err != nil || res.IsError {
		t.Fatalf("%+v %v", res, err)
	}
	if b, _ := json.Marshal(res.StructuredContent); asked != 1 || !strings.Contains(string(b), "Hello, Edsger! 3 confirmed.") {
		t.Errorf("asked %d times, result %s", asked, b)
	}
	if calls := up.Calls(); len(calls) != 2 || calls[1].State != "st-1" {
		t.Errorf("upstream saw %+v", calls)
	}
}

// A call waiting for its client's answer is still under the kill switch,
// and a stopping gateway ends such calls; each outcome is on record.
func TestParkedCallsEnd(t *testing.T) {
	t.Parallel()
	s, _, alice := withFin(t, false, (*apptest.Upstream).AddAsker, "alice", "invoke:fin.ask")
	allowQuestions(t, s, "fin.ask", true, false) // its upstream asks the user
	ask := func() {
		t.Helper()
		r := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.ask","arguments":{},`+
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}}`,
			modernHeaders("tools/call", "fin.ask"))
		if res, _ := rpcMessage(t, r)["result"].(map[string]any); res["resultType"] != "input_required" {
			t.Fatalf("no question: %s", r.Body)
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited in vain for %s", what)
			}
		}
	}
	ask()
	sw := engage(t, s, "tool", "fin.ask")
	waitFor("the killed call's record", func() bool {
		recs := records(t, s, audit.Query{Event: "tool-result"})
		return len(recs) == 1 && recs[0].Reason == "killswitch"
	})
	release(t, s, sw.ID)
	ask()
	start := time.Now()
	s.Stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stopping took %s: it waited for the parked call to give up", d)
	}
	if recs := records(t, s, audit.Query{Event: "tool-result"}); len(recs) != 2 || recs[0].Outcome != audit.Failed {
		t.Errorf("tool-result records after stopping: %+v", recs)
	}
}

// withFin starts a server with a fixture upstream "fin" (stateless: of the
// 2026-07-28 era only), prepared by add and registered, and a user holding
// grants; it returns the user's key.
func withFin(t *testing.T, stateless bool, add func(*apptest.Upstream), user string, grants ...string) (*apptest.Server, *apptest.Upstream, string) {
	t.Helper()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", stateless)
	add(up)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "fin-"+user, grants, user, false)
	key, _ := newKey(t, s, map[string]any{"user": user})
	return s, up, key
}
