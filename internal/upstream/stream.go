package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type relayKey struct{}

// withRelay marks ctx as the context of one call whose notifications go to r.
func withRelay(ctx context.Context, r *Relay) context.Context {
	return context.WithValue(ctx, relayKey{}, r)
}

// maxEvent bounds one server-sent event that is inspected for relaying.
const maxEvent = 1 << 20

// streamRelay reads an upstream's SSE response to one call as the SDK reads
// it and relays each notification on it to that call's client, in stream
// order and before the SDK sees the result: notifications on a call's own
// stream belong to that call and no other.
type streamRelay struct {
	body  io.ReadCloser
	relay *Relay
	buf   []byte // the event being read
	skip  bool   // the current event is too large to inspect
	// onEvent, if set, replaces relaying (for tests).
	onEvent func(method string, params []byte)
}

func (s *streamRelay) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	s.scan(p[:n])
	return n, err
}

func (s *streamRelay) Close() error { return s.body.Close() }

// scan splits the stream into events at blank lines.
func (s *streamRelay) scan(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.add(b)
			return
		}
		s.add(b[:i+1])
		b = b[i+1:]
		if bytes.HasSuffix(s.buf, []byte("\n\n")) || bytes.HasSuffix(s.buf, []byte("\n\r\n")) {
			if !s.skip {
				s.event(s.buf)
			}
			s.buf, s.skip = s.buf[:0], false
		}
	}
}

func (s *streamRelay) add(b []byte) {
	if s.skip || len(s.buf)+len(b) > maxEvent {
		s.skip, s.buf = true, append(s.buf[:0], '\n')
		return
	}
	s.buf = append(s.buf, b...)
}

// event relays one SSE event if it is a progress or logging notification.
func (s *streamRelay) event(ev []byte) {
	var data []string
	for _, line := range strings.Split(string(ev), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data:"); ok {
			data = append(data, strings.TrimPrefix(v, " "))
		}
	}
	if len(data) == 0 {
		return
	}
	var msg struct {
		Method string          `json:"method"`
		ID     json.RawMessage `json:"id"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal([]byte(strings.Join(data, "\n")), &msg) != nil || msg.ID != nil {
		return
	}
	if s.onEvent != nil {
		s.onEvent(msg.Method, msg.Params)
		return
	}
	r := s.relay
	switch msg.Method {
	case "notifications/progress":
		var p mcp.ProgressNotificationParams
		if json.Unmarshal(r.RedactJSON(msg.Params), &p) == nil && r.ProgressToken != nil && r.Session != nil {
			p.ProgressToken = r.ProgressToken
			r.Session.NotifyProgress(r.Ctx, &p)
		}
	case "notifications/message":
		r.log(msg.Params)
	}
}
