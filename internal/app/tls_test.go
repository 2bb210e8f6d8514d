package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
)

// startTLS runs a real Ostiary serving HTTPS.
func startTLS(t *testing.T, ca *apptest.CA, min string) (addr, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	if _, err := app.Init(context.Background(), filepath.Join(dir, "data"), time.Now); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, certFile, keyFile, 100)
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.TLSCert, cfg.TLSKey, cfg.TLSMin = filepath.Join(dir, "data"), "127.0.0.1:0", certFile, keyFile, min
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a.Addr(), certFile, keyFile
}

func handshake(addr string, roots *x509.CertPool, version uint16) (*tls.ConnectionState, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: version, MaxVersion: version})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return &st, nil
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := apptest.NewCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	addr, certFile, keyFile := startTLS(t, ca, "1.2")
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		if _, err := handshake(addr, roots, v); err == nil {
			t.Errorf("%s accepted", tls.VersionName(v))
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		st, err := handshake(addr, roots, v)
		if err != nil || st.Version != v {
			t.Errorf("%s: %v", tls.VersionName(v), err)
		}
	}
	// A renewed certificate is served without a restart.
	ca.Issue(t, certFile, keyFile, 200)
	testutil.Eventually(t, 5*time.Second, func() bool {
		st, err := handshake(addr, roots, tls.VersionTLS13)
		return err == nil && st.PeerCertificates[0].SerialNumber.Int64() == 200
	}, "the renewed certificate was not picked up")

	addr13, _, _ := startTLS(t, ca, "1.3")
	if _, err := handshake(addr13, roots, tls.VersionTLS12); err == nil {
		t.Error("TLS 1.2 accepted with --tls-min 1.3")
	}
	if _, err := handshake(addr13, roots, tls.VersionTLS13); err != nil {
		t.Error(err)
	}
}
