//lint:file-ignore SA1019 sampling, elicitation and roots are deprecated as of 2026-07-28 (SEP-2577) but still relayed and governed; this file exercises them.

package upstream

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// Judge: what each label allows, the URL's form, the allow-list, and the
// policy's say (deny beats the label, allow stands in for it, but never
// for the URL checks).
func TestGateJudge(t *testing.T) {
	list := spec.NewHostAllow([]string{"login.example.com", "*.corp.example"})
	form := &mcp.ElicitParams{Message: "Name?"}
	url := func(u string) *mcp.ElicitParams { return &mcp.ElicitParams{Mode: "url", URL: u, Message: "Open"} }
	sampling := &mcp.CreateMessageParams{MaxTokens: 1}
	allowAll := func(Question) (string, string) { return "allow", "rule-a" }
	denyAll := func(Question) (string, string) { return "deny", "rule-d" }
	for _, c := range []struct {
		name   string
		gate   Gate
		method string
		params any
		reason string // "" = allowed
		host   string
	}{
		{"form, unlabelled", Gate{}, "elicitation/create", form, ReasonElicitNotAllowed, ""},
		{"form, labelled", Gate{Elicitation: true}, "elicitation/create", form, "", ""},
		{"form, sampling label only", Gate{Sampling: true}, "elicitation/create", form, ReasonElicitNotAllowed, ""},
		{"sampling, unlabelled", Gate{Elicitation: true}, "sampling/createMessage", sampling, ReasonSampleNotAllowed, ""},
		{"sampling, labelled", Gate{Sampling: true}, "sampling/createMessage", sampling, "", ""},
		{"url, no list", Gate{Elicitation: true}, "elicitation/create", url("https://any.test/x"), "", "any.test"},
		{"url on the list", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", url("https://LOGIN.example.com./x"), "", "login.example.com"},
		{"url subdomain", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", url("https://a.b.corp.example/"), "", "a.b.corp.example"},
		{"url wildcard apex", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", url("https://corp.example/"), ReasonElicitURLHost, "corp.example"},
		{"url suffix trick", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", url("https://login.example.com.evil.test/"), ReasonElicitURLHost, "login.example.com.evil.test"},
		{"url plain http", Gate{Elicitation: true}, "elicitation/create", url("http://any.test/"), ReasonElicitURL, ""},
		{"url http loopback", Gate{Elicitation: true}, "elicitation/create", url("http://127.0.0.1:9/"), "", "127.0.0.1"},
		{"url userinfo", Gate{Elicitation: true}, "elicitation/create", url("https://u:p@login.example.com/"), ReasonElicitURL, ""},
		{"url scheme", Gate{Elicitation: true}, "elicitation/create", url("javascript:alert(1)"), ReasonElicitURL, ""},
		{"url relative", Gate{Elicitation: true}, "elicitation/create", url("/login"), ReasonElicitURL, ""},
		{"url mode inferred", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", &mcp.ElicitParams{URL: "https://evil.test/"}, ReasonElicitURLHost, "evil.test"},
		{"form with a url", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", &mcp.ElicitParams{Mode: "form", URL: "https://evil.test/"}, ReasonElicitURLHost, "evil.test"},
		{"unknown mode", Gate{Elicitation: true}, "elicitation/create", &mcp.ElicitParams{Mode: "iframe"}, ReasonElicitMode, ""},
		{"raw params", Gate{Elicitation: true, URLAllow: list}, "elicitation/create", map[string]any{"mode": "url", "url": "https://evil.test/"}, ReasonElicitURLHost, "evil.test"},
		{"policy allows", Gate{Decide: allowAll}, "sampling/createMessage", sampling, "", ""},
		{"policy denies over the label", Gate{Elicitation: true, Decide: denyAll}, "elicitation/create", form, "rule-d", ""},
		{"policy cannot pass the list", Gate{URLAllow: list, Decide: allowAll}, "elicitation/create", url("https://evil.test/"), ReasonElicitURLHost, "evil.test"},
	} {
		q, refusal := c.gate.Judge(c.method, c.params)
		got := ""
		if refusal != nil {
			got = refusal.Reason
		}
		if got != c.reason || q.URLHost != c.host {
			t.Errorf("%s: refusal %q host %q, want %q %q", c.name, got, q.URLHost, c.reason, c.host)
		}
	}
}
