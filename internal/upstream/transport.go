package upstream

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/ostiary/ostiary/internal/assertion"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// How an HTTP request reaches an upstream: its own transport per upstream
// (and per environment with a client certificate), verified TLS with the
// client key from the vault, the injector that adds the admin's headers
// with their secrets resolved, the identity assertion and the correlation
// ids, and the cap on what a response may send.

// Resolver returns a secret's value (and its version) for injection into
// an upstream, having recorded the access (rec carries who it is for).
type Resolver interface {
	Resolve(ctx context.Context, name, upstream, env string, rec audit.Record) (vault.Injected, error)
}

// resolve expands the secret references in value for c and u, noting what
// it injected in known.
func (p *Pool) resolve(ctx context.Context, c Caller, u spec.Upstream, value string, known vault.Known) (string, error) {
	if !vault.RefRE.MatchString(value) {
		return value, nil
	}
	if p.cfg.Secrets == nil {
		return "", &refusedError{fmt.Errorf("upstream %s refers to a secret but no vault is open", u.Name)}
	}
	rec := audit.Record{Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID}
	out, err := vault.Expand(value, func(name string) ([]byte, error) {
		v, err := p.cfg.Secrets.Resolve(ctx, name, u.Name, c.env(), rec)
		if err == nil && known != nil {
			known[name] = v
		}
		return v.Value, err
	})
	if err != nil {
		return "", &refusedError{err}
	}
	return out, nil
}

// transport returns the HTTP transport for u: its own, so that a connection
// opened under one upstream's address policy is never reused by another.
// With a client certificate, whose key is a secret valued per environment,
// each environment has its own transport, so that a connection
// authenticated with one environment's key never carries another's calls.
func (p *Pool) transport(u spec.Upstream, env string) http.RoundTripper {
	if p.cfg.Transport != nil {
		return p.cfg.Transport
	}
	if u.TLS.ClientKeySecret == "" {
		env = ""
	}
	tlsID := sha256.Sum256(fmt.Appendf(nil, "%q/%q/%q/%t/%q", u.TLS.CA, u.TLS.ClientCert, u.TLS.ClientKeySecret, u.TLS.InsecureSkipVerify, env))
	policy := u.DialPolicy()
	key := fmt.Sprintf("%s/%+v/%d/%x", u.Name, policy, u.CreatedAt.UnixNano(), tlsID[:8])
	if t, ok := p.transports.Load(key); ok {
		return t.(http.RoundTripper)
	}
	base := spec.GuardedTransport(policy)
	cfg, err := p.tlsConfig(u)
	if err != nil { // validated when added: only a damaged store gets here
		return failingTransport{fmt.Errorf("upstream %s: TLS configuration: %w", u.Name, err)}
	}
	base.TLSClientConfig = cfg
	t, _ := p.transports.LoadOrStore(key, base)
	return t.(http.RoundTripper)
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// injector builds each HTTP request to an upstream: the admin's static
// headers, a fresh identity assertion for the caller in the request context
// (else the session's owner), and the correlation id. Nothing of the
// client's request is forwarded.
type injector struct {
	base  http.RoundTripper
	pool  *Pool
	u     spec.Upstream
	owner Caller
}

func (t *injector) RoundTrip(r *http.Request) (*http.Response, error) {
	c, ok := r.Context().Value(callerKey{}).(Caller)
	if !ok {
		c = t.owner
	}
	// The caller rides along in the context so that a TLS handshake this
	// request opens resolves the client key under their name.
	r = r.Clone(context.WithValue(r.Context(), callerKey{}, c))
	relay, _ := r.Context().Value(relayKey{}).(*Relay)
	known := vault.Known{}
	for k, v := range t.u.Headers {
		v, err := t.pool.resolve(r.Context(), c, t.u, v, known)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", t.u.Name, err)
		}
		r.Header.Set(k, v)
	}
	if t.u.TokenExchange != nil {
		bearer, err := t.pool.exchanged(r.Context(), c, t.u, known)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", t.u.Name, err)
		}
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	if relay != nil {
		relay.know(known)
	}
	tok, err := t.pool.assert(c, t.u)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", t.u.Name, err)
	}
	r.Header.Set(assertion.Header, tok)
	if c.RequestID != "" {
		r.Header.Set("X-Request-ID", c.RequestID)
	}
	if c.Traceparent != "" {
		r.Header.Set("Traceparent", c.Traceparent)
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{body: resp.Body, left: t.pool.cfg.MaxResponse, upstream: t.u.Name}
	if relay != nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &streamRelay{body: resp.Body, relay: relay}
	}
	return resp, nil
}

// capped fails a response body that exceeds its budget, so a flooding
// upstream costs a bounded amount of memory.
type capped struct {
	body     io.ReadCloser
	left     int64
	upstream string
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("upstream %s sent more than the response limit", c.upstream)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.body.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.body.Close() }

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
