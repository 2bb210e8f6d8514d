package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
)

// An https upstream of a private CA that demands a client certificate:
// Ostiary reaches it only when told to trust that CA and given a client
// certificate whose key lives in the vault; the key is resolved under the
// caller's name, audited, and never shown.
func TestUpstreamMutualTLS(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	dir := t.TempDir()
	ca, other := apptest.NewCA(t), apptest.NewCA(t)
	file := func(name string) string { return filepath.Join(dir, name) }
	ca.Issue(t, file("srv.pem"), file("srv.key"), 2)
	ca.IssueClient(t, file("cli.pem"), file("cli.key"), "ostiary-gateway")
	other.IssueClient(t, file("stranger.pem"), file("stranger.key"), "stranger")
	read := func(name string) string {
		b, err := os.ReadFile(file(name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	srvCert, err := tls.LoadX509KeyPair(file("srv.pem"), file("srv.key"))
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(ca.Cert)
	var mu sync.Mutex
	var peers []string
	m := mcp.NewServer(&mcp.Implementation{Name: "vaulted", Version: "1"}, nil)
	mcp.AddTool(m, &mcp.Tool{Name: "balance", Description: "Account balance."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]any, error) {
			return nil, map[string]any{"eur": 12}, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return m }, &mcp.StreamableHTTPOptions{Stateless: true})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers = append(peers, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point here
	srv.StartTLS()
	t.Cleanup(srv.Close)
	url := srv.URL + "/mcp"

	add := func(name string, tlsOpts map[string]any) apptest.Response {
		return s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": name, "url": url, "allow_private": true, "tls": tlsOpts})
	}
	// Refused at registration: nonsense that would otherwise fail later.
	for name, bad := range map[string]map[string]any{
		"a private key as CA":            {"ca": read("cli.key")},
		"a cert without its key":         {"ca": read("srv.pem"), "client_cert": read("cli.pem")},
		"a key secret without a cert":    {"client_key_secret": "k"},
		"skip-verify and a CA":           {"ca": read("srv.pem"), "insecure_skip_verify": true},
		"a key pasted as client cert":    {"client_cert": read("cli.key"), "client_key_secret": "k"},
		"an ill-formed secret name":      {"client_cert": read("cli.pem"), "client_key_secret": "../k"},
		"an unknown field (typo)":        {"insecure_skip_verfy": true},
		"a CA bundle with no PEM at all": {"ca": "hello"},
	} {
		if r := add("bad", bad); r.Status != http.StatusBadRequest {
			t.Errorf("%s: status %d %s", name, r.Status, r.Body)
		}
	}
	if r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "bad", "url": "https://example.com/mcp",
		"tls": map[string]any{"insecure_skip_verify": true}}); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "loopback") {
		t.Errorf("skip-verify for a remote upstream: %d %s", r.Status, r.Body)
	}

	// The system roots do not know this CA; trusting it is not enough
	// while the upstream demands a client certificate; a certificate from
	// another CA is turned away by the upstream.
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/bank-key", s.AdminKey, map[string]any{"value": read("cli.key"), "upstreams": []string{"bank", "skip", "mismatch"}}), http.StatusOK)
	mustStatus(t, s.Do("PUT", "/api/v1/secrets/stranger-key", s.AdminKey, map[string]any{"value": read("stranger.key"), "upstreams": []string{"stranger"}}), http.StatusOK)
	for _, c := range []struct {
		name string
		opts map[string]any
		why  string
	}{
		{"sysroots", nil, "failed to verify certificate"},
		{"nocert", map[string]any{"ca": string(ca.PEM)}, "certificate required"},
		{"stranger", map[string]any{"ca": string(ca.PEM), "client_cert": read("stranger.pem"), "client_key_secret": "stranger-key"}, "unknown certificate authority"},
		{"mismatch", map[string]any{"ca": string(ca.PEM), "client_cert": read("stranger.pem"), "client_key_secret": "bank-key"}, "is not the key of"},
	} {
		r := add(c.name, c.opts)
		var out struct {
			Sync struct {
				Tools int    `json:"tools"`
				Error string `json:"error"`
			} `json:"sync"`
		}
		r.JSON(t, &out)
		if r.Status != http.StatusCreated || out.Sync.Tools != 0 || !strings.Contains(out.Sync.Error, c.why) {
			t.Errorf("%s: want a sync error saying %q: %d %s", c.name, c.why, r.Status, r.Body)
		}
	}

	r := add("bank", map[string]any{"ca": string(ca.PEM), "client_cert": read("cli.pem"), "client_key_secret": "bank-key"})
	mustStatus(t, r, http.StatusCreated)
	if body := string(r.Body); !strings.Contains(body, `"client_cert_subject":"CN=ostiary-gateway"`) || strings.Contains(body, "PRIVATE KEY") {
		t.Errorf("registration answer: %s", body)
	}
	setup(t, s, "banker", []string{"invoke:bank.*", "invoke:skip.*"}, "alice", false)
	key, _ := newKey(t, s, map[string]any{"user": "alice"})
	cs, err := s.Client(t, key, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "bank.balance"})
	if err != nil || res.IsError {
		t.Fatalf("call over mutual TLS: %+v %v", res, err)
	}
	mu.Lock()
	if len(peers) == 0 || peers[len(peers)-1] != "ostiary-gateway" {
		t.Errorf("the upstream saw client certificates %q", peers)
	}
	mu.Unlock()
	var sawKey bool
	for _, rec := range records(t, s, audit.Query{Event: "secret-access", Outcome: audit.Success}) {
		sawKey = sawKey || rec.Target == "secret:bank-key" && rec.Detail["upstream"] == "bank"
	}
	if !sawKey {
		t.Error("no audited access to the client key")
	}

	// Verification off: only at a loopback address, and on record.
	mustStatus(t, add("skip", map[string]any{"insecure_skip_verify": true, "client_cert": read("cli.pem"), "client_key_secret": "bank-key"}), http.StatusCreated)
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "skip.balance"}); err != nil || res.IsError {
		t.Fatalf("call with verification off: %+v %v", res, err)
	}
	var onRecord bool
	for _, rec := range records(t, s, audit.Query{Event: "upstream-add", Outcome: audit.Success}) {
		if rec.Target == "upstream:skip" {
			tlsDetail, _ := rec.Detail["tls"].(map[string]any)
			onRecord = tlsDetail["insecure_skip_verify"] == true
		}
	}
	if !onRecord {
		t.Error("turning verification off is not in the audit record")
	}
	list := s.Do("GET", "/api/v1/upstreams", s.AdminKey, nil)
	if body := string(list.Body); strings.Contains(body, "PRIVATE KEY") || strings.Contains(body, "BEGIN CERTIFICATE") || !strings.Contains(body, `"insecure_skip_verify":true`) {
		t.Errorf("listing: %s", body)
	}
}
