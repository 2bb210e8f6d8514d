package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/cli"
	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/policy"
)

// Hostile tests of what an approver reads (issue "Trust at the edges", §7):
//
//	attack                                                          observable that holds
//	tools/call fin.pay {"to": "ACME\u202e1000\x1b[2J…"} (bidi, ESC)  approvals show prints \u202e, \u001b; no raw character
//	vote reason "ok\n vote: dave approved …" (a forged line)        the newline is \n: no line starts "vote:       dave"
//	payee "p\u0430ypal" (Cyrillic а in a Latin word)                marked [mixed-script]
//	tools/call "fin.pay\u2066\u200b" (bidi, zero-width in a name)   audit query prints the target escaped
//	any of it with --json                                           \u escapes, the same JSON value
//	approvals show                                                  argument digest, byte length, tool version, definition digest

// hostileRunes must never reach the terminal as themselves.
const hostileRunes = "\u202e\u2066\u2069\u200b\x1b\u2028\U000E0041"

func assertNoRaw(t *testing.T, what, out string) {
	t.Helper()
	if i := strings.IndexAny(out, hostileRunes); i >= 0 {
		t.Errorf("%s prints a raw %q: %q", what, []rune(out[i:])[0], out)
	}
}

func TestHostileApprovalRendering(t *testing.T) {
	t.Parallel()
	w := newApprovalWorld(t, nil) // default policy: a large irreversible payment needs two approvers
	payee := "ACME\u202e0001\u2066 \x1b[2J\U000E0041 <&> p\u0430ypal"
	res, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.pay", Arguments: map[string]any{"amount": 25000, "to": payee}})
	if err != nil {
		t.Fatal(err)
	}
	id := approvalIDRE.FindString(resultText(res))
	if id == "" {
		t.Fatalf("not held: %s", resultText(res))
	}
	forged := "ok\u2066\n" + "vote:       dave approved at 2026-01-01T00:00:00Z: fine\u2028 really"
	mustStatus(t, w.vote(w.carol, id, "approve", forged), http.StatusOK)
	a := w.status(t, id)
	raw, _ := json.Marshal(map[string]any{"amount": 25000, "to": payee})
	canon, err := jcs.Canonicalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	if a.ArgsBytes != len(canon) || a.ArgsSHA256 != hex.EncodeToString(sum[:]) || len(a.ToolDigest) != 64 {
		t.Fatalf("stored request: %d bytes, sha256 %s; canonical arguments: %d bytes, %x", a.ArgsBytes, a.ArgsSHA256, len(canon), sum)
	}

	code, out, stderr := runCLI(w.s, w.carol, "approvals", "show", id)
	if code != cli.ExitOK {
		t.Fatalf("approvals show: %d %s", code, stderr)
	}
	assertNoRaw(t, "approvals show", out)
	for _, want := range []string{
		`\u202e0001\u2066 \u001b[2J\U000e0041 <&> `, "p\u0430ypal\"} [mixed-script]", `ok\u2066\nvote:       dave approved`, `fine\u2028 really`,
		fmt.Sprintf("args bytes: %d\n", len(canon)), "args hash:  sha256 " + a.ArgsSHA256 + " (matches the arguments shown)\n",
		fmt.Sprintf("tool:       fin.pay on fin, version %d\n", a.ToolVersion), "definition: sha256 " + a.ToolDigest + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("approvals show lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "vote:       dave") {
			t.Errorf("a reason forged a vote line: %q", line)
		}
	}

	// --json: the same value, escaped.
	code, out, _ = runCLI(w.s, w.carol, "approvals", "show", id, "--json")
	assertNoRaw(t, "approvals show --json", out)
	var back approval.Approval
	var args struct{ To string }
	if err := json.Unmarshal([]byte(out), &back); code != cli.ExitOK || err != nil || back.Votes[0].Reason != forged ||
		json.Unmarshal(back.Args, &args) != nil || args.To != payee {
		t.Errorf("approvals show --json is not the same value: %v\n%s", err, out)
	}
	code, out, _ = runCLI(w.s, w.carol, "approvals", "list")
	assertNoRaw(t, "approvals list", out)
	if code != cli.ExitOK || !strings.Contains(out, id) {
		t.Errorf("approvals list: %s", out)
	}

	// A tool name the client chose, on record: audit query.
	bad := "fin.pay\u2066\u200b"
	if res, err := w.bob.CallTool(context.Background(), &mcp.CallToolParams{Name: bad, Arguments: map[string]any{}}); err == nil && !res.IsError {
		t.Fatal("a call to an unknown tool ran")
	}
	code, out, stderr = runCLI(w.s, w.s.AdminKey, "audit", "query", "--event", "tool-call", "--limit", "5")
	if code != cli.ExitOK {
		t.Fatalf("audit query: %d %s", code, stderr)
	}
	assertNoRaw(t, "audit query", out)
	if !strings.Contains(out, `tool:fin.pay\u2066\u200b`) {
		t.Errorf("audit query does not show the escaped tool name:\n%s", out)
	}
	code, out, _ = runCLI(w.s, w.s.AdminKey, "audit", "query", "--event", approval.EventDecided, "--json")
	assertNoRaw(t, "audit query --json", out)
	if code != cli.ExitOK || !strings.Contains(out, `ok\u2066\nvote:`) {
		t.Errorf("audit query --json: %s", out)
	}
	// What the server says back can quote the client: errors are escaped too.
	code, _, stderr = runCLI(w.s, w.carol, "approvals", "show", "apr_\u202eabc")
	assertNoRaw(t, "an error", stderr)
	if code != cli.ExitError {
		t.Errorf("approvals show of a bad id: %d %s", code, stderr)
	}
	// A label owner is validated by letter class, so look-alike alphabets
	// get through: the tool list marks them.
	label(t, w.s, "fin.lookup", policy.Labels{DataClasses: []string{"internal"}, Owner: "P\u0430yments team"})
	if _, out, _ := runCLI(w.s, w.s.AdminKey, "tools", "list"); !strings.Contains(out, "[mixed-script]") {
		t.Errorf("tools list does not mark a mixed-script owner:\n%s", out)
	}
}
