//lint:file-ignore SA1019 MCP logging is deprecated as of 2026-07-28 (SEP-2577) but still relayed; this test proves its redaction.

package upstream

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// oneSecret resolves every reference to one value, version 7.
type oneSecret struct{ value string }

func (s oneSecret) Resolve(context.Context, string, string, string, audit.Record) (vault.Injected, error) {
	return vault.Injected{Value: []byte(s.value), Version: 7}, nil
}

// echoAuditor keeps the records it is given and refuses secret-echo ones
// while failing is set.
type echoAuditor struct {
	mu      sync.Mutex
	failing bool
	echoes  []audit.Record
}

func (a *echoAuditor) Write(_ context.Context, e audit.Entry) (audit.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Record.Event != EventSecretEcho {
		return e.Record, nil
	}
	if a.failing {
		return audit.Record{}, errors.New("disk full")
	}
	a.echoes = append(a.echoes, e.Record)
	return e.Record, nil
}

// A resource read whose answer held the injected secret (base64 in a
// text) is returned redacted only once its secret-echo-redacted record is
// written; if the record cannot be written the answer is withheld.
func TestEchoRecordFailsClosed(t *testing.T) {
	const secret = "tok-9d2c71a0e4b3f58c"
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	srv.AddResource(&mcp.Resource{Name: "r", URI: "fixture://r"}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		enc := base64.StdEncoding.EncodeToString([]byte("k=" + req.Extra.Header.Get("X-Api-Key")))
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: enc}}}, nil
	})
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	defer hs.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	signer, _ := assertion.NewSigner(key, time.Now)
	aud := &echoAuditor{}
	p, err := NewPool(PoolConfig{Signer: signer, Auditor: aud, Logger: slog.New(slog.DiscardHandler), Now: time.Now, Secrets: oneSecret{secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := spec.Upstream{Name: "up", Kind: spec.HTTP, URL: hs.URL, AllowPrivate: true, Headers: map[string]string{"X-Api-Key": "${secret:tok}"}}
	c := Caller{User: "alice", RequestID: "req-1"}
	res, err := p.ReadResource(context.Background(), c, u, "fixture://r", Continuation{})
	if err != nil {
		t.Fatal(err)
	}
	if text := res.Contents[0].Text; text != "[REDACTED secret:tok]" {
		t.Errorf("read %q", text)
	}
	if len(aud.echoes) != 1 || aud.echoes[0].Target != "resource:fixture://r" || aud.echoes[0].Actor != "alice" || aud.echoes[0].RequestID != "req-1" {
		t.Fatalf("records: %+v", aud.echoes)
	}
	got := aud.echoes[0].Detail["secrets"].([]any)[0].(map[string]any)
	if got["secret"] != "tok" || got["version"] != 7 || strings.Join(got["encodings"].([]string), ",") != "base64" {
		t.Errorf("detail: %+v", aud.echoes[0].Detail)
	}
	aud.mu.Lock()
	aud.failing = true
	aud.mu.Unlock()
	if res, err := p.ReadResource(context.Background(), c, u, "fixture://r", Continuation{}); err == nil || res != nil || strings.Contains(err.Error(), secret) {
		t.Errorf("with the audit log failing: %v, %v", res, err)
	}
}

// A notification's params arrive as raw JSON: an upstream writing the
// secret as \u escapes ({"level":"error","data":"\u0074ok-9d2c…"}) gets it
// redacted all the same, as what the client decodes is what is searched.
// Failed before: Redact on the raw bytes found nothing, and the client
// decoded the secret.
func TestRelayRedactsEscapedNotification(t *testing.T) {
	const secret = "tok-9d2c71a0e4b3f58c"
	r := &Relay{}
	r.know(vault.Known{"tok": {Value: []byte(secret), Version: 1}})
	var esc strings.Builder
	for _, c := range secret {
		esc.WriteString(`\u00` + strconv.FormatInt(int64(c), 16))
	}
	raw := []byte(`{"level":"error","data":"key ` + esc.String() + `"}`)
	var p mcp.LoggingMessageParams
	if err := json.Unmarshal(r.RedactJSON(raw), &p); err != nil {
		t.Fatal(err)
	}
	if s := p.Data.(string); strings.Contains(s, secret) || s != "key [REDACTED secret:tok]" {
		t.Errorf("relayed %q", s)
	}
	if red := r.Redactions(); len(red) != 1 || red[0].Secret != "tok" {
		t.Errorf("redactions: %+v", red)
	}
}
