package spec

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ostiary/ostiary/internal/vault"
)

// TLS is how Ostiary verifies an HTTPS upstream and identifies itself to
// it. The zero value verifies against the system roots and presents no
// client certificate.
type TLS struct {
	// CA is a PEM bundle: when set, the upstream's certificate must chain
	// to one of these certificates, and the system roots are not trusted.
	CA string `json:"ca,omitempty"`
	// ClientCert is a PEM certificate chain presented for mutual TLS. Its
	// private key never leaves the vault: ClientKeySecret names the secret
	// holding it (PEM), resolved at each handshake and audited.
	ClientCert      string `json:"client_cert,omitempty"`
	ClientKeySecret string `json:"client_key_secret,omitempty"`
	// InsecureSkipVerify accepts any certificate. It is refused unless the
	// upstream's URL is a literal loopback address, and is recorded in the
	// audit record that registers the upstream.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// IsZero reports whether t changes nothing from the default.
func (t TLS) IsZero() bool { return t == TLS{} }

// ClientSubject is the subject of the client certificate, "" without one.
func (t TLS) ClientSubject() string {
	chain, err := CertChain(t.ClientCert)
	if err != nil {
		return ""
	}
	return chain[0].Subject.String()
}

// Summary is what an audit record says of t: no certificates, whether
// verification was turned off.
func (t TLS) Summary() map[string]any {
	return map[string]any{"custom_ca": t.CA != "", "client_cert_subject": t.ClientSubject(),
		"client_key_secret": t.ClientKeySecret, "insecure_skip_verify": t.InsecureSkipVerify}
}

// validate checks t for an upstream reached at rawURL; errors are safe to
// show (they never quote key material).
func (t TLS) validate(rawURL string) error {
	if t.IsZero() {
		return nil
	}
	pu, err := url.Parse(rawURL)
	if err != nil || pu.Scheme != "https" {
		return fmt.Errorf("TLS options apply only to an https:// upstream")
	}
	if t.CA != "" {
		if _, err := CertPool(t.CA); err != nil {
			return err
		}
	}
	if (t.ClientCert == "") != (t.ClientKeySecret == "") {
		return fmt.Errorf("mutual TLS needs both a client certificate and the vault secret holding its key")
	}
	if t.ClientCert != "" {
		if _, err := CertChain(t.ClientCert); err != nil {
			return err
		}
		if !vault.ValidName(t.ClientKeySecret) {
			return fmt.Errorf("invalid secret name %q for the client key", clip(t.ClientKeySecret))
		}
	}
	if t.InsecureSkipVerify {
		if t.CA != "" {
			return fmt.Errorf("a CA bundle and skipping verification contradict each other: choose one")
		}
		ip, err := netip.ParseAddr(strings.Trim(pu.Hostname(), "[]"))
		if err != nil || !ip.Unmap().IsLoopback() {
			return fmt.Errorf("certificate verification can be turned off only for an upstream at a literal loopback address (127.0.0.1 or [::1])")
		}
	}
	return nil
}

// CertPool parses a PEM bundle that must hold at least one certificate
// and nothing else.
func CertPool(bundle string) (*x509.CertPool, error) {
	certs, err := CertChain(bundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// CertChain parses PEM certificates; any other block (a private key pasted
// by mistake, say) is refused rather than kept.
func CertChain(text string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("expected only CERTIFICATE blocks, found %q", clip(b.Type))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("unparsable certificate: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("want one or more PEM certificates and nothing else")
	}
	return out, nil
}
