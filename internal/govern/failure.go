package govern

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// failureClass names, for the client, the kind of transport failure that
// kept an upstream from answering (connection refused, timed out, …), so
// that a user can tell a stopped upstream from a slow or misconfigured one.
// It names only the class: never an address, a URL or what the upstream
// said, which the operational log keeps. "" when the class is not known.
func failureClass(err error) string {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &dns):
		return "host name not resolved"
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid):
		return "its TLS certificate was not accepted"
	case errors.As(err, &record):
		return "TLS handshake failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE), errors.Is(err, mcp.ErrConnectionClosed):
		return "connection closed"
	}
	// Errors that crossed the SDK or were redacted may have lost their
	// chain; their text still says what happened. Not what an upstream
	// wrote into it: quoted text (values it sent, as the SDK and the pool
	// quote them) is left out, and a JSON-RPC error of its own makes the
	// phrases moot (it answered).
	msg := unquoted(err.Error())
	for _, c := range []struct{ text, class string }{
		{"connection refused", "connection refused"},
		{"connection reset", "connection reset"},
		{"no such host", "host name not resolved"},
		{"certificate", "its TLS certificate was not accepted"},
		{"tls:", "TLS handshake failed"},
		{"timeout", "timed out"},
		{"deadline exceeded", "timed out"},
		{"broken pipe", "connection closed"},
		{"EOF", "connection closed"},
		{"connection closed", "connection closed"},
	} {
		if strings.Contains(msg, c.text) && !upstreamWrote(err) {
			return c.class
		}
	}
	// The SDK reports an HTTP error status by its text, last.
	for code := 400; code < 600; code++ {
		if st := http.StatusText(code); st != "" && strings.HasSuffix(msg, ": "+st) {
			return fmt.Sprintf("HTTP %d %s", code, st)
		}
	}
	return ""
}

// unquoted is s without its Go-quoted ("…", escapes honoured) segments;
// an unterminated one drops the rest.
func unquoted(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return b.String() + s
		}
		b.WriteString(s[:i])
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return b.String()
		}
		s = s[j+1:]
	}
}

// upstreamWrote reports whether err's chain holds a JSON-RPC error other
// than the SDK's own "rejected by transport": one an upstream wrote.
func upstreamWrote(err error) bool {
	var walk func(error) bool
	walk = func(e error) bool {
		for e != nil {
			if we, ok := e.(*jsonrpc.Error); ok && (we.Code != codeRejected || we.Message != "rejected by transport") {
				return true
			}
			if multi, ok := e.(interface{ Unwrap() []error }); ok {
				return slices.ContainsFunc(multi.Unwrap(), walk)
			}
			e = errors.Unwrap(e)
		}
		return false
	}
	return walk(err)
}

// codeRejected is the code of the SDK's "rejected by transport".
const codeRejected = -32005
