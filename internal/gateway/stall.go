package gateway

import (
	"net/http"
	"time"
)

// stallGuard bounds how long one write to the client may block. The
// server's fixed write timeout cannot stay on /mcp (a held call or an
// event stream lives longer), but a client that stops reading must not pin
// its response in memory: before every write and flush, the deadline is
// moved to now+stall, so an idle stream is never cut while a write the
// client does not take ends after stall, and the handler with it.
type stallGuard struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func newStallGuard(w http.ResponseWriter, stall time.Duration) *stallGuard {
	return &stallGuard{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
}

func (s *stallGuard) arm() { s.rc.SetWriteDeadline(time.Now().Add(s.stall)) }

func (s *stallGuard) WriteHeader(code int) {
	s.arm()
	s.ResponseWriter.WriteHeader(code)
}

func (s *stallGuard) Write(b []byte) (int, error) {
	s.arm()
	return s.ResponseWriter.Write(b)
}

func (s *stallGuard) Flush() {
	s.arm()
	s.rc.Flush()
}

func (s *stallGuard) Unwrap() http.ResponseWriter { return s.ResponseWriter }
