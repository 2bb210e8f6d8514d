package govern

import (
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// An upstream that answers chooses the text of its answer: whatever it
// writes, it must not make the gateway name a failure class it did not
// have ("did not answer the call: connection refused" of an upstream that
// answered). Each error is shaped as the SDK or the pool makes it.
func TestFailureClassIgnoresUpstreamText(t *testing.T) {
	rejected := &jsonrpc.Error{Code: -32005, Message: "rejected by transport"} // the SDK's own
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a JSON-RPC error body on HTTP 500, with the SDK's code", fmt.Errorf(`calling "tools/call": %w: %w: %v`,
			&jsonrpc.Error{Code: -32005, Message: "dial tcp 10.0.0.1:443: connect: connection refused"}, rejected, "Internal Server Error"),
			"HTTP 500 Internal Server Error"},
		{"a message whose version tag is a phrase (quoted by the SDK)",
			fmt.Errorf("calling %q: %w", "tools/call", fmt.Errorf("failed to decode response: invalid message version tag %q; expected %q", "x509: certificate expired", "2.0")), ""},
		{"a content type the modern pool quotes", fmt.Errorf("upstream answered HTTP %d (%q)", 200, "x/connection refused"), ""},
		// What the transport says is still named.
		{"refused, as text", fmt.Errorf(`calling "tools/call": %w: Post "https://h/mcp": dial tcp 10.0.0.1:443: connect: connection refused`, rejected), "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := failureClass(tc.err); got != tc.want {
				t.Errorf("failureClass(%q) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
