package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/adminapi"
)

// client talks to the admin API.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// newClient reads OSTIARY_ADDR (default http://127.0.0.1:8080) and
// OSTIARY_TOKEN, or, without it, the token 'ostiary login' kept for that
// address. It refuses to send a credential in clear text to a host that is
// not loopback.
func (e *env) newClient() (*client, error) {
	addr, err := e.addr()
	if err != nil {
		return nil, err
	}
	u, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(e.getenv("OSTIARY_TOKEN"))
	if token == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if token, err = e.loadLogin(ctx, addr); err != nil {
			return nil, err
		}
	}
	hc, err := e.httpClient()
	if err != nil {
		return nil, err
	}
	return &client{base: u, token: token, http: hc}, nil
}

// addr is OSTIARY_ADDR, checked, without a trailing slash.
func (e *env) addr() (string, error) {
	addr := e.getenv("OSTIARY_ADDR")
	if addr == "" {
		addr = "http://127.0.0.1:8080"
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := parseAddr(addr)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// parseAddr checks a server address: http(s), no credentials or query, and
// plain HTTP only to a loopback host (an API key must not cross a network
// in clear text).
func parseAddr(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("OSTIARY_ADDR %q: want a URL such as http://127.0.0.1:8080", addr)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("OSTIARY_ADDR %q: refusing to send an API key over plain HTTP to a non-loopback host; use https://", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// httpClient trusts the system's CAs, or the PEM bundle in OSTIARY_CA_FILE
// (for a server whose certificate a private CA issued).
func (e *env) httpClient() (*http.Client, error) {
	t, err := e.transport()
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: t, CheckRedirect: noRedirects}, nil
}

// noRedirects keeps the API key with the server it was given for: a
// redirect is an error, never followed.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (e *env) transport() (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if f := e.getenv("OSTIARY_CA_FILE"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("OSTIARY_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OSTIARY_CA_FILE %s holds no PEM certificate", f)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return t, nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// apiError is an error response from the server.
type apiError struct {
	status int
	body   adminapi.ErrorBody
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (%s, request %s)", e.body.Error.Message, e.body.Error.Code, e.body.RequestID)
}

// do sends a request and decodes a successful JSON answer into out. raw,
// if not nil, receives the answer's bytes (for --json).
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any, raw *[]byte) error {
	u := *c.base
	u.Path += "/api/v1" + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
			return fmt.Errorf("cannot reach ostiary at %s: is 'ostiary serve' running? (%v)", c.base.Host, unwrapURLError(err))
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		ae := &apiError{status: resp.StatusCode}
		if json.Unmarshal(b, &ae.body) != nil || ae.body.Error.Code == "" {
			return fmt.Errorf("server answered %s", resp.Status)
		}
		return ae
	}
	if raw != nil {
		*raw = b
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("unexpected answer from the server: %w", err)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
