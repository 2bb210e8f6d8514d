package app_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/fault"
)

// upstreamAdds returns the upstream-add records, oldest first.
func upstreamAdds(t *testing.T, s *apptest.Server) []audit.Record {
	t.Helper()
	recs := records(t, s, audit.Query{Event: "upstream-add"})
	slices.Reverse(recs)
	return recs
}

// Attacks that aim an upstream at an address outside the public internet
// through a spelling or a wrapping the old check did not read, e.g.
//
//	POST /api/v1/upstreams {"name":"x","url":"https://[64:ff9b::a9fe:a9fe]/mcp"}
//
// (cloud metadata through NAT64). Each is refused with 400, nothing is
// added, and the refusal is recorded. Those marked always are refused even
// with allow_private: 0.0.0.0, which Linux answers from loopback, is one
// of them, shown here with a live upstream on 127.0.0.1 behind it.
func TestHostileSSRFSpecialRanges(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); http.NotFound(w, r) }))
	defer target.Close()
	port := target.URL[strings.LastIndex(target.URL, ":"):] + "/mcp" // ":PORT/mcp"
	for _, c := range []struct {
		url     string
		private bool
		want    string
	}{
		{"https://[64:ff9b::a9fe:a9fe]/mcp", false, "NAT64"},
		{"https://[64:ff9b:1::a9fe:a9fe]/mcp", false, "NAT64"},
		{"https://[2002:a9fe:a9fe::1]/mcp", false, "inside 6to4"},
		{"https://[2001:0:808:808::80ff:fffe]/mcp", false, "inside Teredo"},
		{"https://[::ffff:a9fe:a9fe]/mcp", false, "link-local"},
		{"https://198.18.0.1/mcp", false, "benchmarking"},
		{"https://[fec0::1]/mcp", false, "site-local"},
		{"http://0.0.0.0" + port, true, "no upstream may reach"},
		{"http://[::]" + port, true, "no upstream may reach"},
		{"http://[::ffff:0.0.0.0]" + port, true, "no upstream may reach"},
		{"https://0.1.2.3/mcp", true, "no upstream may reach"},
		{"https://240.0.0.1/mcp", true, "no upstream may reach"},
		{"https://255.255.255.255/mcp", true, "no upstream may reach"},
		{"https://192.0.2.1/mcp", true, "no upstream may reach"},
		{"https://[64:ff9b::0.0.0.0]/mcp", true, "no upstream may reach"},
		{"http://0x7f000001" + port, true, "dotted-decimal"},
		{"http://2130706433" + port, true, "dotted-decimal"},
		{"http://0177.0.0.1" + port, true, "dotted-decimal"},
		{"http://127.1" + port, true, "dotted-decimal"},
		{"https://0xa9fea9fe/latest/meta-data", false, "dotted-decimal"},
		{"http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1" + port, true, "IDNA"}, // fullwidth digits
	} {
		r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "x", "url": c.url, "allow_private": c.private})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), c.want) {
			t.Errorf("%s (allow_private %t): %d %s, want 400 %q", c.url, c.private, r.Status, r.Body, c.want)
			s.Do("DELETE", "/api/v1/upstreams/x", s.AdminKey, nil)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server on 127.0.0.1 behind those spellings was reached %d times", n)
	}
	for _, rec := range upstreamAdds(t, s) {
		if rec.Outcome != audit.Failed || rec.Reason != string(fault.Invalid) {
			t.Errorf("refused add recorded as %s/%s", rec.Outcome, rec.Reason)
		}
	}
}

// Plain HTTP off loopback crosses the network unencrypted:
//
//	POST /api/v1/upstreams {"name":"x","url":"http://mcp.example.com/mcp"}
//
// is refused with 400 naming --allow-plain-http; loopback needs no flag;
// the flag, when given, is stored, listed and in the upstream-add record.
func TestHostilePlainHTTPUpstream(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	for _, raw := range []string{"http://mcp.example.com/mcp", "http://10.1.2.3/mcp", "http://[fd00::1]:8080/mcp", "http://localhost.attacker.example/mcp"} {
		r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "x", "url": raw, "allow_private": true})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "--allow-plain-http") {
			t.Errorf("%s: %d %s", raw, r.Status, r.Body)
		}
	}
	refused := upstreamAdds(t, s)
	if len(refused) != 4 || refused[0].Outcome != audit.Failed || refused[0].Detail["allow_plain_http"] != false {
		t.Fatalf("refusals recorded: %+v", refused)
	}

	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	up2 := apptest.NewUpstream(t, s, "ops", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "ops", "url": up2.URL, "allow_private": true, "allow_plain_http": true}), http.StatusCreated)
	var list struct {
		Upstreams []struct {
			Name           string `json:"name"`
			AllowPlainHTTP bool   `json:"allow_plain_http"`
		} `json:"upstreams"`
	}
	s.Do("GET", "/api/v1/upstreams", s.AdminKey, nil).JSON(t, &list)
	if len(list.Upstreams) != 2 || list.Upstreams[0].AllowPlainHTTP || !list.Upstreams[1].AllowPlainHTTP {
		t.Errorf("listed: %+v", list.Upstreams)
	}
	added := upstreamAdds(t, s)[4:]
	if len(added) != 2 || added[0].Outcome != audit.Success || added[0].Detail["allow_plain_http"] != false || added[1].Detail["allow_plain_http"] != true {
		t.Errorf("adds recorded: %+v", added)
	}
	// The flag survives a restart: it is stored, not only echoed.
	s.Stop()
	s.Restart(nil)
	s.Do("GET", "/api/v1/upstreams", s.AdminKey, nil).JSON(t, &list)
	if len(list.Upstreams) != 2 || !list.Upstreams[1].AllowPlainHTTP {
		t.Errorf("after a restart: %+v", list.Upstreams)
	}
}

// A credential written into an upstream's URL, e.g.
//
//	POST /api/v1/upstreams {"name":"x","url":"https://admin:SECRET@mcp.example.com/mcp"}
//	POST /api/v1/upstreams {"name":"x","url":"https://mcp.example.com/mcp?api_key=SECRET"}
//
// is refused with 400, and SECRET is in neither the error, the audit log
// (which cannot be edited afterwards) nor the server's log.
func TestHostileURLCredential(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	b := make([]byte, 8)
	rand.Read(b)
	secret := "pw" + hex.EncodeToString(b)
	for _, raw := range []string{
		"https://admin:" + secret + "@mcp.example.com/mcp",
		"https://" + secret + "@mcp.example.com/mcp",
		"http://admin:" + secret + "@127.0.0.1:1/mcp",
		"https://mcp.example.com/mcp?api_key=" + secret,
		"https://mcp.example.com/mcp?region=eu&Access-Token=" + secret,
		"https://mcp.example.com/mcp?sig=" + secret,
		"https://mcp.example.com/mcp?password=" + secret,
		"https://mcp.example.com/mcp?q=Bearer%20" + secret + secret,
		"https://admin:" + secret + "@[::1/mcp", // does not even parse
		"https://mcp.example.com/mcp?%zz&token=" + secret,
		"https://mcp.example.com/mcp#" + secret,
		"https://mcp.example.com/mcp?" + secret, // a bare token
		// Found by review: tokens in the path, in a matrix parameter, and as
		// an innocently named query value.
		"https://mcp.example.com/ghp_" + secret + "Zq8Lr2XvN/mcp",
		"https://mcp.example.com/mcp;token=ghp_" + secret + "Zq8Lr2XvN",
		"https://mcp.example.com/mcp?x=xoxb-" + secret + "-Zq8Lr2XvN",
		"https://mcp.example.com/v1/" + secret + "Zq8Lr2XvNp0T5kWbY7cHj/mcp",
	} {
		r := s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "x", "url": raw, "allow_private": true})
		if r.Status != http.StatusBadRequest || strings.Contains(string(r.Body), secret) {
			t.Errorf("%s: %d %s", raw, r.Status, r.Body)
		}
	}
	all, _ := json.Marshal(records(t, s, audit.Query{}))
	if strings.Contains(string(all), secret) {
		t.Errorf("the audit log holds the credential: %s", all)
	}
	if n := len(upstreamAdds(t, s)); n != 16 {
		t.Errorf("%d refusals recorded, want 16", n)
	}
	if page := s.Do("GET", "/api/v1/audit?event=upstream-add", s.AdminKey, nil); strings.Contains(string(page.Body), secret) {
		t.Errorf("GET /api/v1/audit shows the credential: %s", page.Body)
	}
	if strings.Contains(s.Log.String(), secret) {
		t.Errorf("the server log holds the credential:\n%s", s.Log)
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeCert writes a certificate for 127.0.0.1 whose key is key, signed
// with sig by itself, or by parent (certificate and key) whose certificate
// then follows it in the chain file; and key to keyFile.
func writeCert(t *testing.T, certFile, keyFile string, key crypto.Signer, sig x509.SignatureAlgorithm, serial int64, parent *tls.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "weak"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), SignatureAlgorithm: sig,
		IsCA: parent == nil, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Leaf, parent.PrivateKey.(crypto.Signer)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if parent != nil {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: parent.Certificate[0]})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// openTLS opens (and, if it opens, starts) a server with certFile/keyFile.
func openTLS(t *testing.T, certFile, keyFile string, log io.Writer) (*app.App, error) {
	t.Helper()
	dir := t.TempDir()
	if _, err := app.Init(context.Background(), dir, time.Now); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.TLSCert, cfg.TLSKey = dir, "127.0.0.1:0", certFile, keyFile
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(log, nil)), time.Now)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a, a.Start(context.Background())
}

// A weak certificate given to serve, e.g.
//
//	ostiary serve --tls-cert rsa1024.pem --tls-key rsa1024.key
//
// (or ECDSA P-224, or any certificate of the chain signed with SHA-1)
// stops serve from starting, with an error that says what is weak; one
// swapped in later is not reloaded: the previous certificate is still
// served and the refusal is logged.
func TestHostileWeakServeCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	writeCert(t, certFile, keyFile, p256, x509.ECDSAWithSHA1, 1, nil)
	sha1CA, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		key    crypto.Signer
		sig    x509.SignatureAlgorithm
		parent *tls.Certificate
		want   string // "" serves
	}{
		{"RSA 1024", rsa1024, x509.SHA256WithRSA, nil, "1024-bit RSA key"},
		{"ECDSA P-224", p224, x509.ECDSAWithSHA256, nil, "P-224"},
		{"SHA-1 signature", rsa2048, x509.SHA1WithRSA, nil, "signed with SHA1-RSA"},
		{"SHA-1 intermediate", p256, x509.ECDSAWithSHA256, &sha1CA, "certificate 2 of the chain (CN=weak) is signed with ECDSA-SHA1"},
		{"RSA 2048", rsa2048, x509.SHA256WithRSA, nil, ""},
		{"ECDSA P-256", p256, x509.ECDSAWithSHA256, nil, ""},
		{"Ed25519", ed, x509.PureEd25519, nil, ""},
	} {
		writeCert(t, certFile, keyFile, c.key, c.sig, 2, c.parent)
		_, err := openTLS(t, certFile, keyFile, io.Discard)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}

	// Reload: a good certificate serves; a weak one replacing it does not.
	writeCert(t, certFile, keyFile, p256, x509.ECDSAWithSHA256, 100, nil)
	var log syncBuffer
	a, err := openTLS(t, certFile, keyFile, &log)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		conn, err := tls.Dial("tcp", a.Addr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 100 {
		t.Fatalf("serving serial %d", got)
	}
	writeCert(t, certFile, keyFile, rsa1024, x509.SHA256WithRSA, 200, nil)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), "not reloaded"); time.Sleep(200 * time.Millisecond) {
		if got := serial(); got != 100 {
			t.Fatalf("the weak certificate was loaded: serving serial %d", got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged:\n%s", log.String())
		}
	}
	if got := serial(); got != 100 || !strings.Contains(log.String(), "1024-bit RSA key") {
		t.Errorf("after the refusal: serial %d, log:\n%s", got, log.String())
	}
}
