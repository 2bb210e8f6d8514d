//lint:file-ignore SA1019 sampling is deprecated as of 2026-07-28 (SEP-2577) but still relayed when allowed; these tests prove it is governed.

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/adminapi"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/policy"
)

// Upstream-initiated requests (elicitation, sampling) are governed: refused
// unless the tool's labels allow them, on record either way
// (upstream-request: kind, mode, tool, the URL's host, never the message),
// and a URL-mode elicitation's URL must be https (http only to loopback),
// without credentials, and on the operator's allow-list when one is set.
// A refusal answers the upstream with a JSON-RPC error; the client is not
// asked. Every era pair: 2025 client + session upstream (the SDK relay),
// 2026 client + session upstream (the bridge), 2026 client + 2026 upstream
// (input_required relayed), 2025 client + 2026 upstream (the SDK answers
// input_required through the relay).

// allowQuestions labels tool so that its upstream may elicit and/or
// sample during its calls.
func allowQuestions(t *testing.T, s *apptest.Server, tool string, elicit, sample bool) {
	t.Helper()
	mustStatus(t, s.Do("POST", "/api/v1/tools/labels", s.AdminKey, adminapi.ToolLabels{Tool: tool,
		Labels: &policy.Labels{AllowElicitation: elicit, AllowSampling: sample}}), http.StatusOK)
}

// allowByPolicy sets a policy (the default one's rules aside) with one
// upstream_requests rule allowing what when holds.
func allowByPolicy(t *testing.T, s *apptest.Server, when string) {
	t.Helper()
	src := "version: 1\nrules: []\nupstream_requests:\n  - id: allowed-question\n    when: '" + when + "'\n    decision: allow\n"
	mustStatus(t, s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: src}), http.StatusOK)
}

// withQuestioner is a server (tuned) with upstream "fin" offering the
// Questioner's tools, and alice's key, who may call them.
func withQuestioner(t *testing.T, stateless bool, tune func(*config.Config)) (*apptest.Server, *apptest.Upstream, *apptest.Questioner, string) {
	t.Helper()
	s := apptest.StartWith(t, tune)
	up := apptest.NewUpstream(t, s, "fin", stateless)
	q := up.AddQuestioner()
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "fin-alice", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	return s, up, q, key
}

// askingClient is a 2025-11-25 client that answers every question (form
// and URL elicitation, sampling) and counts them.
func askingClient(t *testing.T, s *apptest.Server, key string, asked *int) *mcp.ClientSession {
	t.Helper()
	cs, err := s.ClientWith(t, key, "2025-11-25", &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{},
			Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			*asked++
			if r.Params.Mode == "url" {
				return &mcp.ElicitResult{Action: "accept"}, nil
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
		CreateMessageHandler: func(_ context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			*asked++
			return &mcp.CreateMessageResult{Model: "m-1", Role: "assistant", Content: &mcp.TextContent{Text: "ok"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// lastQuestion is the newest upstream-request record (records come
// newest first).
func lastQuestion(t *testing.T, s *apptest.Server) audit.Record {
	t.Helper()
	recs := records(t, s, audit.Query{Event: "upstream-request"})
	if len(recs) == 0 {
		t.Fatal("no upstream-request record")
	}
	return recs[0]
}

// wantQuestion checks the newest upstream-request record.
func wantQuestion(t *testing.T, s *apptest.Server, outcome audit.Outcome, reason, kind, mode, tool string) audit.Record {
	t.Helper()
	r := lastQuestion(t, s)
	if r.Outcome != outcome || r.Reason != reason || r.Actor != "alice" || r.Detail["kind"] != kind || fmt.Sprint(r.Detail["mode"]) != mode ||
		r.Detail["tool"] != tool {
		t.Errorf("upstream-request record: %s %s %v, want %s %s kind=%s mode=%s tool=%s", r.Outcome, r.Reason, r.Detail, outcome, reason, kind, mode, tool)
	}
	return r
}

// Attack: a 2025-11-25 client calls tools/call {"name":"fin.ask_session",
// "arguments":{"kind":"form"}} on an unlabelled tool whose session-based
// upstream then sends elicitation/create (a phishing form in the user's
// client). Refused: the client is never asked, the upstream gets a
// JSON-RPC error, the record says elicitation-not-allowed. Labelled
// --allow-elicitation, the same call is relayed.
func TestHostileElicitSessionFormNeedsLabel(t *testing.T) {
	t.Parallel()
	s, _, q, key := withQuestioner(t, false, nil)
	asked := 0
	cs := askingClient(t, s, key, &asked)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_session", Arguments: map[string]any{"kind": "form"}})
	if err != nil || !res.IsError || asked != 0 {
		t.Fatalf("unlabelled: asked %d, %+v %v", asked, res, err)
	}
	if out := q.Outcomes(); len(out) != 1 || !strings.HasPrefix(out[0], "refused: ") || !strings.Contains(out[0], "not labelled to allow elicitation") {
		t.Errorf("upstream got %q", out)
	}
	wantQuestion(t, s, audit.Denied, "elicitation-not-allowed", "elicitation", "form", "tool:fin.ask_session")

	allowQuestions(t, s, "fin.ask_session", true, false)
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_session", Arguments: map[string]any{"kind": "form"}})
	if err != nil || res.IsError || asked != 1 {
		t.Fatalf("labelled: asked %d, %+v %v", asked, res, err)
	}
	if out := q.Outcomes(); out[len(out)-1] != "accept" {
		t.Errorf("upstream got %q", out)
	}
	wantQuestion(t, s, audit.Success, "", "elicitation", "form", "tool:fin.ask_session")
}

// Attack: the same unlabelled tool's upstream sends sampling/createMessage
// (spending the user's model on its prompt). Refused as
// sampling-not-allowed; a label allowing elicitation does not allow
// sampling; --allow-sampling does.
func TestHostileSamplingNeedsItsOwnLabel(t *testing.T) {
	t.Parallel()
	s, _, q, key := withQuestioner(t, false, nil)
	asked := 0
	cs := askingClient(t, s, key, &asked)
	call := func() *mcp.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_session", Arguments: map[string]any{"kind": "sampling"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, label := range []string{"none", "elicitation only"} {
		if label != "none" {
			allowQuestions(t, s, "fin.ask_session", true, false)
		}
		if res := call(); !res.IsError || asked != 0 {
			t.Fatalf("%s: asked %d, %+v", label, asked, res)
		}
		wantQuestion(t, s, audit.Denied, "sampling-not-allowed", "sampling", "<nil>", "tool:fin.ask_session")
	}
	if out := q.Outcomes(); len(out) != 2 || !strings.Contains(out[1], "not labelled to allow sampling") {
		t.Errorf("upstream got %q", out)
	}
	allowQuestions(t, s, "fin.ask_session", false, true)
	if res := call(); res.IsError || asked != 1 {
		t.Fatalf("labelled: asked %d, %+v", asked, res)
	}
	wantQuestion(t, s, audit.Success, "", "sampling", "<nil>", "tool:fin.ask_session")
}

// modernCall is a 2026-07-28 tools/call of tool with args, declaring
// caps; it returns the JSON-RPC message.
func modernCall(t *testing.T, s *apptest.Server, key, tool, args, caps string) map[string]any {
	t.Helper()
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps + `}`
	r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`","arguments":`+args+`,`+meta+`}}`,
		modernHeaders("tools/call", tool))
	return rpcMessage(t, r)
}

// Attack: a 2026-07-28 client calls the unlabelled tool; its session-based
// upstream elicits (the bridge would turn it into an input_required
// result). Refused: no input_required reaches the client, the upstream
// gets the error, on record. Labelled: the question is bridged.
func TestHostileElicitBridgeNeedsLabel(t *testing.T) {
	t.Parallel()
	s, _, q, key := withQuestioner(t, false, nil)
	m := modernCall(t, s, key, "fin.ask_session", `{"kind":"form"}`, `{"elicitation":{}}`)
	res, _ := m["result"].(map[string]any)
	if res["resultType"] != "complete" || res["isError"] != true || !strings.Contains(fmt.Sprint(res["content"]), "not labelled to allow elicitation") {
		t.Fatalf("unlabelled: %v", m)
	}
	if out := q.Outcomes(); len(out) != 1 || !strings.HasPrefix(out[0], "refused: ") {
		t.Errorf("upstream got %q", out)
	}
	wantQuestion(t, s, audit.Denied, "elicitation-not-allowed", "elicitation", "form", "tool:fin.ask_session")

	allowQuestions(t, s, "fin.ask_session", true, false)
	m = modernCall(t, s, key, "fin.ask_session", `{"kind":"form"}`, `{"elicitation":{}}`)
	res, _ = m["result"].(map[string]any)
	reqs, _ := res["inputRequests"].(map[string]any)
	state, _ := res["requestState"].(string)
	if res["resultType"] != "input_required" || len(reqs) != 1 {
		t.Fatalf("labelled: %v", m)
	}
	r := wantQuestion(t, s, audit.Success, "", "elicitation", "form", "tool:fin.ask_session")
	if r.Detail["via"] != "input_required" {
		t.Errorf("bridged record: %v", r.Detail)
	}
	for id := range reqs { // answered: the parked call ends
		m = modernCall(t, s, key, "fin.ask_session", `{"kind":"form"},"inputResponses":{"`+id+`":{"action":"decline"}},"requestState":"`+state+`"`, `{"elicitation":{}}`)
	}
	if out := q.Outcomes(); out[len(out)-1] != "decline" {
		t.Errorf("upstream got %q (%v)", out, m)
	}
}

// Attack: a 2026-07-28 upstream answers the unlabelled tool's call with
// input_required asking for a form, then for sampling. Refused before the
// client sees it (a JSON-RPC error, no inputRequests, no requestState),
// the upstream is never continued, each on record. Labelled: relayed.
func TestHostileInputRequiredNeedsLabel(t *testing.T) {
	t.Parallel()
	s, up, _, key := withQuestioner(t, true, nil)
	const caps = `{"elicitation":{},"sampling":{}}`
	for _, c := range []struct{ kind, reason, mode string }{
		{"form", "elicitation-not-allowed", "form"},
		{"sampling", "sampling-not-allowed", "<nil>"},
	} {
		m := modernCall(t, s, key, "fin.ask_mrtr", `{"kind":"`+c.kind+`"}`, caps)
		e, _ := m["error"].(map[string]any)
		if m["result"] != nil || e["code"] != float64(-32603) || !strings.Contains(fmt.Sprint(e["message"]), "not labelled") {
			t.Errorf("%s unlabelled: %v", c.kind, m)
		}
		kind := map[string]string{"form": "elicitation", "sampling": "sampling"}[c.kind]
		wantQuestion(t, s, audit.Denied, c.reason, kind, c.mode, "tool:fin.ask_mrtr")
		results := records(t, s, audit.Query{Event: "tool-result"})
		if last := results[0]; last.Outcome != audit.Denied || last.Reason != c.reason {
			t.Errorf("%s tool-result: %s %s", c.kind, last.Outcome, last.Reason)
		}
	}
	before := len(up.Calls())
	allowQuestions(t, s, "fin.ask_mrtr", true, true)
	for _, kind := range []string{"form", "sampling"} {
		m := modernCall(t, s, key, "fin.ask_mrtr", `{"kind":"`+kind+`"}`, caps)
		if res, _ := m["result"].(map[string]any); res["resultType"] != "input_required" {
			t.Errorf("%s labelled: %v", kind, m)
		}
	}
	if n := len(up.Calls()) - before; n != 2 {
		t.Errorf("upstream called %d times, want 2", n)
	}
}

// Attack: with serve --elicit-url-allow '*.example.com', the labelled
// tool's 2026-07-28 upstream asks the user to open a URL elsewhere
// (https://evil.test/login), over plain http, or with credentials in it.
// Each refused (the client never sees the URL), on record with the host
// only, never the path or the credentials; a URL on the list is relayed.
func TestHostileElicitURLAllowList(t *testing.T) {
	t.Parallel()
	s, _, _, key := withQuestioner(t, true, func(c *config.Config) { c.ElicitURLAllow = []string{"*.example.com"} })
	allowQuestions(t, s, "fin.ask_mrtr", true, false)
	const caps = `{"elicitation":{"url":{}}}`
	for _, c := range []struct{ url, reason, host string }{
		{"https://evil.test/login?next=secret-path", "elicitation-url-host-refused", "evil.test"},
		{"https://example.com/login", "elicitation-url-host-refused", "example.com"},
		{"https://login.example.com.evil.test/", "elicitation-url-host-refused", "login.example.com.evil.test"},
		{"http://login.example.com/", "elicitation-url-invalid", "<nil>"},
		{"https://ada:hunter2@login.example.com/", "elicitation-url-invalid", "<nil>"},
		{"javascript:alert(1)", "elicitation-url-invalid", "<nil>"},
	} {
		m := modernCall(t, s, key, "fin.ask_mrtr", `{"kind":"url","url":"`+c.url+`"}`, caps)
		if m["result"] != nil || !strings.Contains(fmt.Sprint(m["error"]), "refused") || strings.Contains(fmt.Sprint(m), c.url) {
			t.Errorf("%s: %v", c.url, m)
		}
		r := wantQuestion(t, s, audit.Denied, c.reason, "elicitation", "url", "tool:fin.ask_mrtr")
		if fmt.Sprint(r.Detail["url_host"]) != c.host || strings.Contains(fmt.Sprint(r.Detail), "hunter2") || strings.Contains(fmt.Sprint(r.Detail), "secret-path") {
			t.Errorf("%s: record %v", c.url, r.Detail)
		}
	}
	m := modernCall(t, s, key, "fin.ask_mrtr", `{"kind":"url","url":"https://login.example.com/sso?x=1"}`, caps)
	res, _ := m["result"].(map[string]any)
	if res["resultType"] != "input_required" || !strings.Contains(fmt.Sprint(res["inputRequests"]), "https://login.example.com/sso?x=1") {
		t.Fatalf("allowed host: %v", m)
	}
	if r := wantQuestion(t, s, audit.Success, "", "elicitation", "url", "tool:fin.ask_mrtr"); r.Detail["url_host"] != "login.example.com" {
		t.Errorf("record %v", r.Detail)
	}
}

// Attack: a 2025-11-25 client calls the labelled tool of a 2026-07-28
// upstream, which asks (input_required, answered by the pool's SDK client
// through the relay) the user to open a URL off the allow-list. Refused:
// the client's handler never runs and the upstream is not continued; a
// URL on the list reaches the client, and the upstream gets its answer.
func TestHostileElicitURLLegacyClient(t *testing.T) {
	t.Parallel()
	s, _, q, key := withQuestioner(t, true, func(c *config.Config) { c.ElicitURLAllow = []string{"login.example.com"} })
	allowQuestions(t, s, "fin.ask_mrtr", true, false)
	asked := 0
	cs := askingClient(t, s, key, &asked)
	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_mrtr", Arguments: map[string]any{"kind": "url", "url": "https://evil.test/x"}})
	if err == nil || asked != 0 {
		t.Fatalf("off the list: asked %d, %v", asked, err)
	}
	if out := q.Outcomes(); !slices.Equal(out, []string{"asked"}) {
		t.Errorf("upstream got %q", out)
	}
	wantQuestion(t, s, audit.Denied, "elicitation-url-host-refused", "elicitation", "url", "tool:fin.ask_mrtr")
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_mrtr", Arguments: map[string]any{"kind": "url", "url": "https://login.example.com/x"}})
	if err != nil || res.IsError || asked != 1 {
		b, _ := json.Marshal(res)
		t.Fatalf("on the list: asked %d, %s %v", asked, b, err)
	}
	if out := q.Outcomes(); out[len(out)-1] != "accept" {
		t.Errorf("upstream got %q", out)
	}
}

// Attack: a 2026-07-28 upstream's prompt asks the user for input with
// input_required. Prompts carry no labels: refused, on record. Asked of a
// 2025-11-25 client (through the pool's SDK client, outside any tool
// call), it is refused as before, the record now saying what was asked.
func TestHostilePromptQuestionsRefused(t *testing.T) {
	t.Parallel()
	s, _, alice := withFin(t, true, (*apptest.Upstream).AddBrief, "alice", "invoke:fin.brief")
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}`
	r := rpc(t, s, alice, `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"fin.brief","arguments":{"topic":"tea"},`+meta+`}}`,
		modernHeaders("prompts/get", "fin.brief"))
	if m := rpcMessage(t, r); m["result"] != nil || !strings.Contains(fmt.Sprint(m["error"]), "refused") {
		t.Fatalf("%v", m)
	}
	wantQuestion(t, s, audit.Denied, "elicitation-not-allowed", "elicitation", "form", "prompt:fin.brief")

	asked := 0
	cs := askingClient(t, s, alice, &asked)
	if _, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "fin.brief", Arguments: map[string]string{"topic": "tea"}}); err == nil || asked != 0 {
		t.Fatalf("legacy client: asked %d, %v", asked, err)
	}
	if r := lastQuestion(t, s); r.Reason != "no-single-call-in-flight" || r.Detail["kind"] != "elicitation" {
		t.Errorf("record: %s %v", r.Reason, r.Detail)
	}
}

// Attack: an unlabelled tool's upstream elicits; the operator's policy
// allows URL elicitation to one host only (upstream_requests rule), and
// denies sampling for service accounts even where the label allows it.
// The rule's allow is on record; a deny rule beats the label; a URL the
// rule does not cover stays refused.
func TestHostileQuestionsByPolicy(t *testing.T) {
	t.Parallel()
	s, _, _, key := withQuestioner(t, true, nil)
	src := "version: 1\nrules: []\nupstream_requests:\n" +
		"  - id: sso-login\n    when: 'request.mode == \"url\" && request.url_host == \"sso.example.com\"'\n    decision: allow\n" +
		"  - id: no-sampling-for-alice\n    when: 'request.kind == \"sampling\" && principal.user == \"alice\"'\n    decision: deny\n"
	mustStatus(t, s.Do("PUT", "/api/v1/policy", s.AdminKey, adminapi.SetPolicy{Source: src}), http.StatusOK)
	const caps = `{"elicitation":{"url":{}},"sampling":{}}`
	m := modernCall(t, s, key, "fin.ask_mrtr", `{"kind":"url","url":"https://sso.example.com/start"}`, caps)
	if res, _ := m["result"].(map[string]any); res["resultType"] != "input_required" {
		t.Fatalf("allowed by rule: %v", m)
	}
	if r := wantQuestion(t, s, audit.Success, "", "elicitation", "url", "tool:fin.ask_mrtr"); r.Detail["policy_rule"] != "sso-login" {
		t.Errorf("record %v", r.Detail)
	}
	for _, c := range []struct{ args, reason, kind, mode string }{
		{`{"kind":"url","url":"https://other.example.com/start"}`, "elicitation-not-allowed", "elicitation", "url"},
		{`{"kind":"form"}`, "elicitation-not-allowed", "elicitation", "form"},
	} {
		if m := modernCall(t, s, key, "fin.ask_mrtr", c.args, caps); m["result"] != nil {
			t.Errorf("%s: %v", c.args, m)
		}
		wantQuestion(t, s, audit.Denied, c.reason, c.kind, c.mode, "tool:fin.ask_mrtr")
	}
	allowQuestions(t, s, "fin.ask_mrtr", false, true)
	if m := modernCall(t, s, key, "fin.ask_mrtr", `{"kind":"sampling"}`, caps); m["result"] != nil || !strings.Contains(fmt.Sprint(m["error"]), "refused by policy") {
		t.Errorf("deny rule over the label: %v", m)
	}
	wantQuestion(t, s, audit.Denied, "no-sampling-for-alice", "sampling", "<nil>", "tool:fin.ask_mrtr")
}

// Attack: with serve --elicit-url-allow login.example.com, the labelled
// tool's session-based upstream sends elicitation/create in URL mode to
// https://evil.test/ during a 2025-11-25 client's call. Refused: the
// client's handler never runs, the upstream gets the JSON-RPC error, the
// record holds the host only; the listed host is relayed.
func TestHostileElicitURLSession(t *testing.T) {
	t.Parallel()
	s, _, q, key := withQuestioner(t, false, func(c *config.Config) { c.ElicitURLAllow = []string{"login.example.com"} })
	allowQuestions(t, s, "fin.ask_session", true, false)
	asked := 0
	cs := askingClient(t, s, key, &asked)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_session", Arguments: map[string]any{"kind": "url", "url": "https://evil.test/login"}})
	if err != nil || !res.IsError || asked != 0 {
		t.Fatalf("off the list: asked %d, %+v %v", asked, res, err)
	}
	if out := q.Outcomes(); len(out) != 1 || !strings.Contains(out[0], "not on this server's allow-list") {
		t.Errorf("upstream got %q", out)
	}
	if r := wantQuestion(t, s, audit.Denied, "elicitation-url-host-refused", "elicitation", "url", "tool:fin.ask_session"); r.Detail["url_host"] != "evil.test" ||
		strings.Contains(fmt.Sprint(r.Detail), "/login") {
		t.Errorf("record %v", r.Detail)
	}
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.ask_session", Arguments: map[string]any{"kind": "url", "url": "https://login.example.com/sso"}})
	if err != nil || res.IsError || asked != 1 {
		t.Fatalf("on the list: asked %d, %+v %v", asked, res, err)
	}
	wantQuestion(t, s, audit.Success, "", "elicitation", "url", "tool:fin.ask_session")
}
