//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still relayed; these tests prove its redaction.

package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

// Hostile tests of promise 5 (secrets never leave, in any encoding): an
// upstream that receives ${secret:fin-key} in X-Api-Key and echoes it back
// encoded, so that the bytes Ostiary relays do not contain the value as it
// is.
//
//	tool           what the upstream answers
//	fin.b64        base64 of "x"*n + key + "!" for n = 0, 1, 2, standard and URL alphabets, padded and not
//	fin.hex        hex of "id=" + key, lower and upper case
//	fin.pct        key percent-encoded (every byte, either case, and a subset)
//	fin.esc        key as JSON \u escapes, written literally in the text
//	fin.resource   an embedded resource whose blob is the key's bytes, and one whose text holds it
//	fin.structured structuredContent and _meta holding the key in base64 and hex
//	fin.split      the key cut in two across adjacent text items
//	fin.logged     a log message holding the key's base64 (a notification, not the result)
//
// The client decodes everything it got in every encoding and finds no key;
// each call leaves one secret-echo-redacted record naming the secret, its
// version and the tool.

// echoTools are the hostile tools, each building its result from the key.
var echoTools = map[string]func(key string) *mcp.CallToolResult{
	"b64": func(key string) *mcp.CallToolResult {
		var items []mcp.Content
		for n := range 3 {
			plain := []byte(strings.Repeat("x", n) + key + "!")
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				items = append(items, &mcp.TextContent{Text: "token " + enc.EncodeToString(plain) + " end"})
			}
		}
		return &mcp.CallToolResult{Content: items}
	},
	"hex": func(key string) *mcp.CallToolResult {
		h := hex.EncodeToString([]byte("id=" + key))
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "lower " + h}, &mcp.TextContent{Text: "upper " + strings.ToUpper(h)}}}
	},
	"pct": func(key string) *mcp.CallToolResult {
		var all, some strings.Builder
		for i, b := range []byte(key) {
			if i%2 == 0 {
				fmt.Fprintf(&all, "%%%02x", b)
			} else {
				fmt.Fprintf(&all, "%%%02X", b)
			}
			if i%3 == 0 {
				fmt.Fprintf(&some, "%%%02X", b)
			} else {
				some.WriteByte(b)
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "https://x.example/?k=" + all.String()},
			&mcp.TextContent{Text: "k=" + some.String() + "&x=1"}}}
	},
	"esc": func(key string) *mcp.CallToolResult {
		var b strings.Builder
		for _, r := range key {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: `{"k":"` + b.String() + `"}`}}}
	},
	"resource": func(key string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{
			&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///k.bin", MIMEType: "application/octet-stream", Blob: []byte("\x00\x01key:" + key + "\xff")}},
			&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///k.txt", MIMEType: "text/plain", Text: "key=" + key}},
		}}
	},
	"structured": func(key string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "see structured content"}},
			StructuredContent: map[string]any{"auth": map[string]any{"b64": base64.StdEncoding.EncodeToString([]byte("k:" + key)), key: "as a key"}},
			Meta:              mcp.Meta{"io.example/key": hex.EncodeToString([]byte(key))}}
	},
	"split": func(key string) *mcp.CallToolResult {
		half := len(key) / 2
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "the key is " + key[:half]}, &mcp.TextContent{Text: key[half:] + " (joined)"}}}
	},
}

// newEchoUpstream starts an MCP server whose tools echo the X-Api-Key they
// receive (echoTools, and "logged", which logs it base64-encoded).
func newEchoUpstream(t *testing.T) string {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	for name, build := range echoTools {
		srv.AddTool(&mcp.Tool{Name: name, Description: "echoes its key: " + name, InputSchema: map[string]any{"type": "object"}},
			func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return build(req.Extra.Header.Get("X-Api-Key")), nil
			})
	}
	srv.AddPrompt(&mcp.Prompt{Name: "echo_prompt", Description: "A prompt holding the key, hex."},
		func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			h := strings.ToUpper(hex.EncodeToString([]byte(req.Extra.Header.Get("X-Api-Key"))))
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "use " + h}}}}, nil
		})
	srv.AddResource(&mcp.Resource{Name: "echo_blob", URI: "fixture://echo", MIMEType: "application/octet-stream"},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/octet-stream",
				Blob: []byte("\x00key=" + req.Extra.Header.Get("X-Api-Key"))}}}, nil
		})
	srv.AddTool(&mcp.Tool{Name: "logged", Description: "logs its key", InputSchema: map[string]any{"type": "object"}},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			enc := base64.StdEncoding.EncodeToString([]byte("k=" + req.Extra.Header.Get("X-Api-Key")))
			req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "error", Data: "my key is " + enc})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "logged"}}}, nil
		})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(hs.Close)
	return hs.URL + "/mcp"
}

// revealed returns the encodings in which s, decoded, holds secret: as it
// is, JSON-unescaped, percent-decoded, hex-decoded (any case, either
// parity) and base64-decoded (either alphabet, any offset of any run).
// It decodes on its own (the standard library's decoders), not with the
// code under test.
func revealed(s, secret string) []string {
	var got []string
	if strings.Contains(s, secret) {
		got = append(got, "raw")
	}
	var unq string
	if json.Unmarshal([]byte(`"`+strings.ReplaceAll(s, `"`, `\"`)+`"`), &unq) == nil && strings.Contains(unq, secret) {
		got = append(got, "json-escape")
	}
	if pct := percentDecoded(s); strings.Contains(pct, secret) {
		got = append(got, "url")
	}
	for _, run := range runs(s, "0123456789abcdefABCDEF") {
		for off := range 2 {
			if b, err := hex.DecodeString(run[off : off+(len(run)-off)/2*2]); err == nil && bytes.Contains(b, []byte(secret)) {
				got = append(got, "hex")
			}
		}
	}
	alpha := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for _, run := range append(runs(s, alpha+"+/"), runs(s, alpha+"-_")...) {
		for off := range 4 {
			if off >= len(run) {
				break
			}
			r := run[off:]
			if len(r)%4 == 1 {
				r = r[:len(r)-1] // no base64 ends in one character
			}
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(r); err == nil && bytes.Contains(b, []byte(secret)) {
					got = append(got, "base64")
				}
			}
		}
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// runs returns the maximal runs of s made of the bytes in set.
func runs(s, set string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !strings.ContainsRune(set, r) })
}

// percentDecoded decodes every valid %XX of s, leaving the rest.
func percentDecoded(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b.WriteByte(v[0])
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// seen is everything a client got from a result, in the forms it may read
// it: the JSON of the result, each text, the concatenation of the texts,
// and each blob decoded.
func seen(t *testing.T, res *mcp.CallToolResult) []string {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{string(b)}
	var joined strings.Builder
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			out = append(out, c.Text)
			joined.WriteString(c.Text)
		case *mcp.EmbeddedResource:
			out = append(out, c.Resource.Text, string(c.Resource.Blob))
			joined.WriteString(c.Resource.Text)
		}
	}
	return append(out, joined.String())
}

func startEcho(t *testing.T, version string) (*apptest.Server, *mcp.ClientSession) {
	t.Helper()
	s := apptest.Start(t)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": newEchoUpstream(t), "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "echoers", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, version)
	if err != nil {
		t.Fatal(err)
	}
	return s, cs
}

// echoRecord returns the encodings that the one secret-echo-redacted
// record of target names for fin-key (failing unless there is exactly one,
// by alice, naming fin-key version 1 and never its value).
func echoRecord(t *testing.T, s *apptest.Server, target string) []string {
	t.Helper()
	var mine []audit.Record
	for _, r := range records(t, s, audit.Query{Event: "secret-echo-redacted"}) {
		if r.Target == target {
			mine = append(mine, r)
		}
	}
	if len(mine) != 1 {
		t.Errorf("%d secret-echo-redacted records of %s, want 1", len(mine), target)
		return nil
	}
	b, _ := json.Marshal(mine[0].Detail)
	if strings.Contains(string(b), canary) || mine[0].Actor != "alice" {
		t.Errorf("record: %s (actor %q)", b, mine[0].Actor)
	}
	var d struct {
		Tool    string `json:"tool"`
		Target  string `json:"target"`
		Secrets []struct {
			Secret    string   `json:"secret"`
			Version   int      `json:"version"`
			Encodings []string `json:"encodings"`
		} `json:"secrets"`
	}
	json.Unmarshal(b, &d)
	if d.Tool == "" && d.Target == "" || len(d.Secrets) != 1 || d.Secrets[0].Secret != "fin-key" || d.Secrets[0].Version != 1 {
		t.Errorf("record detail: %s", b)
		return nil
	}
	return d.Secrets[0].Encodings
}

// Attack: tools/call {"name":"fin.<tool>"} on an upstream that answers with
// its injected secret encoded (see the table above). Failed before: every
// tool but fin.resource's text item and fin.structured's key carried the
// canary out (base64, hex, url, \u escapes, blob, _meta hex, split), and no
// record was written.
// Both eras: a 2025 client's call, and a 2026-07-28 client's (which runs
// detached from its request).
func TestHostileRedactEncodings(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"2025-11-25", ""} {
		t.Run("version="+version, func(t *testing.T) { testRedactEncodings(t, version) })
	}
}

func testRedactEncodings(t *testing.T, version string) {
	s, cs := startEcho(t, version)
	want := map[string]string{"b64": "base64", "hex": "hex", "pct": "url", "esc": "json-escape", "resource": "blob",
		"structured": "base64", "split": "split"}
	for tool, enc := range want {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin." + tool})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		for _, v := range seen(t, res) {
			if got := revealed(v, canary); len(got) > 0 {
				t.Errorf("fin.%s: the client can read the secret (%v) in %q", tool, got, v)
			}
		}
		if b, _ := json.Marshal(res); !strings.Contains(string(b), "[REDACTED secret:fin-key]") {
			t.Errorf("fin.%s: no redaction marker in %s", tool, b)
		}
		if encs := echoRecord(t, s, "tool:fin."+tool); !slices.Contains(encs, enc) {
			t.Errorf("fin.%s: record names encodings %v, want %s among them", tool, encs, enc)
		}
	}
}

// Attack: tools/call {"name":"fin.logged"}, whose upstream sends a
// notifications/message holding base64("k=" + secret) while the call runs.
// Failed before: the log message reached the client with the base64 intact.
func TestHostileRedactLogNotification(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": newEchoUpstream(t), "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "echoers", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	logs := make(chan string, 4)
	cs, err := s.ClientWith(t, key, "2025-11-25", &mcp.ClientOptions{LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
		logs <- fmt.Sprint(r.Params.Data)
	}})
	if err != nil {
		t.Fatal(err)
	}
	cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "debug"})
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.logged"}); err != nil {
		t.Fatal(err)
	}
	var msg string
	select {
	case msg = <-logs:
	case <-time.After(5 * time.Second):
		t.Fatal("no log message relayed")
	}
	if got := revealed(msg, canary); len(got) > 0 || !strings.Contains(msg, "[REDACTED secret:fin-key]") {
		t.Errorf("log message %q reveals the secret (%v)", msg, got)
	}
	if encs := echoRecord(t, s, "tool:fin.logged"); !slices.Contains(encs, "base64") {
		t.Errorf("record names encodings %v", encs)
	}
}

// Attack: prompts/get {"name":"fin.echo_prompt"} answering with the secret
// in upper-case hex, and resources/read {"uri":"fixture://echo"} answering
// with a blob holding it. Failed before: both reached the client readable
// (hex, blob) with no record.
func TestHostileRedactPromptAndResource(t *testing.T) {
	t.Parallel()
	s, cs := startEcho(t, "2025-11-25")
	ctx := context.Background()
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "fin.echo_prompt"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(pr)
	if got := revealed(string(b), canary); len(got) > 0 || !strings.Contains(string(b), "[REDACTED secret:fin-key]") {
		t.Errorf("prompt %s reveals the secret (%v)", b, got)
	}
	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "fixture://echo"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(rr)
	if got := revealed(string(b), canary); len(got) > 0 || len(rr.Contents) != 1 || strings.Contains(string(rr.Contents[0].Blob), canary) ||
		!strings.Contains(string(rr.Contents[0].Blob), "[REDACTED secret:fin-key]") {
		t.Errorf("resource %s reveals the secret (%v)", b, got)
	}
	if encs := echoRecord(t, s, "prompt:echo_prompt"); !slices.Contains(encs, "hex") {
		t.Errorf("prompt record names %v", encs)
	}
	if encs := echoRecord(t, s, "resource:fixture://echo"); !slices.Contains(encs, "blob") {
		t.Errorf("resource record names %v", encs)
	}
}

// Attack: an upstream whose tool definition quotes the secret injected
// into the listing's requests, base64-encoded ("Uses key <base64>"); the
// client lists tools. Failed before: the description reached the client
// (and the catalog) with the base64 intact, and no record was written.
func TestHostileRedactDefinition(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	up := apptest.NewUpstream(t, s, "fin", false)
	up.AddDescribed(base64.RawURLEncoding.EncodeToString([]byte("key:" + canary)))
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/fin-key", s.AdminKey, map[string]any{"value": canary, "upstreams": []string{"fin"}}), http.StatusOK)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true,
		"headers": map[string]string{"X-Api-Key": "${secret:fin-key}"}}), http.StatusCreated)
	setup(t, s, "readers", []string{"invoke:fin.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if got := revealed(string(b), canary); len(got) > 0 || !strings.Contains(string(b), "[REDACTED secret:fin-key]") {
		t.Errorf("listing %s reveals the secret (%v)", b, got)
	}
	if r := s.Do("GET", "/api/v1/tools", s.AdminKey, nil); len(revealed(string(r.Body), canary)) > 0 {
		t.Error("the catalog holds the secret, encoded")
	}
	var recs []audit.Record
	for _, r := range records(t, s, audit.Query{Event: "secret-echo-redacted"}) {
		if r.Target == "upstream:fin" {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		t.Fatal("no secret-echo-redacted record of the listing")
	}
	if b, _ := json.Marshal(recs[0].Detail); !strings.Contains(string(b), `"secret":"fin-key"`) || !strings.Contains(string(b), `"base64"`) {
		t.Errorf("listing record: %s", b)
	}
}
