package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// tlsConfig builds the client TLS configuration for u; the client key is
// fetched from the vault at each handshake, under the identity of the
// caller whose request opened the connection.
func (p *Pool) tlsConfig(u spec.Upstream) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	t := u.TLS
	if t.CA != "" {
		pool, err := spec.CertPool(t.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true // validated: loopback only, audited at registration
	}
	if t.ClientCert != "" {
		chain, err := spec.CertChain(t.ClientCert)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.clientCertificate(cri.Context(), u, chain)
		}
	}
	return cfg, nil
}

func (p *Pool) clientCertificate(ctx context.Context, u spec.Upstream, chain []*x509.Certificate) (*tls.Certificate, error) {
	if p.cfg.Secrets == nil {
		return nil, &refusedError{fmt.Errorf("upstream %s: its client key is a vault secret but no vault is open", u.Name)}
	}
	c, _ := ctx.Value(callerKey{}).(Caller)
	rec := audit.Record{Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID}
	key, err := p.cfg.Secrets.Resolve(ctx, u.TLS.ClientKeySecret, u.Name, c.env(), rec)
	keyPEM := key.Value
	if err != nil {
		return nil, &refusedError{fmt.Errorf("upstream %s: client key: %w", u.Name, err)}
	}
	var certPEM []byte
	for _, c := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		// X509KeyPair's errors describe the mismatch, never the key.
		return nil, fmt.Errorf("upstream %s: secret %s is not the key of its client certificate: %v", u.Name, u.TLS.ClientKeySecret, err)
	}
	return &cert, nil
}
