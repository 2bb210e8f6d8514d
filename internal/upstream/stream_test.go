package upstream

import (
	"context"
	"io"
	"strings"
	"testing"
)

// The SSE scanner finds each notification whatever the read boundaries,
// line endings or data line splits, and ignores responses, requests and
// oversized events.
func TestStreamRelayScan(t *testing.T) {
	stream := "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\r\ndata: \"params\":{\"level\":\"info\",\"data\":\"one\"}}\r\n\r\n" +
		"id: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"two\"}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n" +
		"data: " + strings.Repeat("x", maxEvent) + "\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
	for _, chunk := range []int{1, 3, 64, len(stream)} {
		var got []string
		s := &streamRelay{body: io.NopCloser(strings.NewReader(stream)), relay: &Relay{Ctx: context.Background()}}
		s.onEvent = func(method string, params []byte) { got = append(got, method+" "+string(params)) }
		buf := make([]byte, chunk)
		for {
			if _, err := s.Read(buf); err != nil {
				break
			}
		}
		if len(got) != 2 || !strings.Contains(got[0], `"one"`) || !strings.Contains(got[1], `"two"`) {
			t.Errorf("chunk %d: relayed %q", chunk, got)
		}
	}
}
