package app

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in certFile/keyFile and reloads it
// when either file changes (checked at most once a second), so a renewed
// certificate takes effect without a restart. A pair that fails to load,
// or whose chain is weak (weakChain), is refused: at start-up serve does
// not start, on reload it is logged and the previous one kept.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of both files
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger, now func() time.Time) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) fileStamp() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return s, nil
}

func (r *certReloader) load() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if _, err := readSecretFile(r.keyFile); err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	if err := weakChain(cert.Certificate); err != nil {
		return fmt.Errorf("TLS certificate %s refused: %w", r.certFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// weakSignatures are the signature algorithms a served chain must not
// use: MD2, MD5 and SHA-1 digests, whose collisions have been forged
// (SHAttered, 2017), and DSA.
var weakSignatures = map[x509.SignatureAlgorithm]bool{
	x509.MD2WithRSA: true, x509.MD5WithRSA: true, x509.SHA1WithRSA: true, x509.ECDSAWithSHA1: true,
	x509.DSAWithSHA1: true, x509.DSAWithSHA256: true,
}

// weakChain refuses a certificate chain with a key or a signature below
// today's floor: RSA under 2048 bits, ECDSA on a curve under P-256, DSA,
// or any certificate of the chain signed with SHA-1 (or worse).
func weakChain(chain [][]byte) error {
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("certificate %d of the chain: %w", i+1, err)
		}
		what := fmt.Sprintf("certificate %d of the chain (%s)", i+1, c.Subject)
		if weakSignatures[c.SignatureAlgorithm] {
			return fmt.Errorf("%s is signed with %s: reissue it signed with SHA-256 or better", what, c.SignatureAlgorithm)
		}
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if n := k.N.BitLen(); n < 2048 {
				return fmt.Errorf("%s has a %d-bit RSA key: at least 2048 bits are needed", what, n)
			}
		case *ecdsa.PublicKey:
			if n := k.Curve.Params().BitSize; n < 256 {
				return fmt.Errorf("%s has an ECDSA key on %s: P-256 or larger is needed", what, k.Curve.Params().Name)
			}
		case ed25519.PublicKey:
		default:
			return fmt.Errorf("%s has a %s key: use RSA (2048 bits or more), ECDSA (P-256 or larger) or Ed25519", what, c.PublicKeyAlgorithm)
		}
	}
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if stamp, err := r.fileStamp(); err == nil && stamp != r.stamp {
			if err := r.load(); err != nil {
				r.log.Error("TLS certificate not reloaded; serving the previous one", "err", err)
				r.stamp = stamp // do not retry until the files change again
			} else {
				r.log.Info("TLS certificate reloaded", "cert", r.certFile)
			}
		}
	}
	if r.cert == nil {
		return nil, errors.New("no TLS certificate")
	}
	return r.cert, nil
}

// tlsConfig is the server's TLS configuration: TLS 1.2 at least, and for
// 1.2 only forward-secret AEAD suites (TLS 1.3's suites are all such).
func tlsConfig(r *certReloader, min string) *tls.Config {
	v := uint16(tls.VersionTLS12)
	if min == "1.3" {
		v = tls.VersionTLS13
	}
	return &tls.Config{
		MinVersion:     v,
		GetCertificate: r.GetCertificate,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}
