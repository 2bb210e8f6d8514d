package app

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"

	"github.com/ostiary/ostiary/internal/logging"
)

var (
	requestIDRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$`)
	mcpMethodRE   = regexp.MustCompile(`^[A-Za-z/_]{1,64}$`)
)

// withRequestID settles each request's correlation id before any part of
// the server looks at it, and puts it in the request's context so that
// every log line written with that context carries it. The id is the
// gateway's and the admin API's rule: a well-formed X-Request-ID, else the
// trace id of a well-formed traceparent, else a fresh one; the request is
// given it as its X-Request-ID so both pick the same. A request with the
// header twice is left as it came, for the door to refuse.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids := r.Header.Values("X-Request-ID")
		id := ""
		switch {
		case len(ids) == 1 && requestIDRE.MatchString(ids[0]):
			id = ids[0]
		case len(ids) > 1 || len(r.Header.Values("Traceparent")) > 1:
		default:
			if m := traceparentRE.FindStringSubmatch(r.Header.Get("Traceparent")); m != nil {
				id = m[1]
			} else {
				var b [16]byte
				rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			r.Header.Set("X-Request-ID", id)
		}
		if id != "" {
			r = r.WithContext(logging.WithRequestID(r.Context(), id))
		}
		h.ServeHTTP(w, r)
	})
}

// accessLog writes one line per MCP request once it is answered: its id,
// the MCP method the client named in its headers (2026-07-28 clients do),
// status and duration. The principal and the decision are in the audit
// log, under the same request id.
func (a *App) accessLog(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		args := []any{"http_method", r.Method, "status", status, "duration_ms", a.now().Sub(start).Milliseconds(), "remote", r.RemoteAddr}
		if m := r.Header.Get("Mcp-Method"); mcpMethodRE.MatchString(m) {
			args = append(args, "mcp_method", m)
		}
		a.log.InfoContext(r.Context(), "mcp request", args...)
	})
}

// statusWriter records the status of a response and passes everything
// else through (Flush for event streams, Unwrap for ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
