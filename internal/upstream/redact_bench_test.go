package upstream

import (
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/vault"
)

const benchSecret = "canary-3f9a7c1e5b0d42"

// benchResult is a typical 2 KiB tool result: JSON rows as text and the
// same as structured content.
func benchResult(echo bool) *mcp.CallToolResult {
	var b strings.Builder
	rows := []any{}
	for i := 0; b.Len() < 1000; i++ {
		b.WriteString(`{"id":"cus_0012345","name":"Ada Lovelace","email":"ada@example.com","balance":1234.56},`)
		rows = append(rows, map[string]any{"id": "cus_0012345", "name": "Ada Lovelace", "email": "ada@example.com", "balance": 1234.56})
	}
	if echo {
		b.WriteString("key " + benchSecret)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}, StructuredContent: map[string]any{"rows": rows}}
}

// BenchmarkRedactValue measures redacting a typical result on its way to
// the client: with no secret injected, with one injected and not echoed,
// and with one echoed.
func BenchmarkRedactValue(b *testing.B) {
	for _, c := range []struct {
		name  string
		known bool
		echo  bool
	}{{"none-injected", false, false}, {"injected-clean", true, false}, {"injected-echoed", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			res := benchResult(c.echo)
			b.ReportAllocs()
			for b.Loop() {
				r := &Relay{}
				if c.known {
					r.know(vault.Known{"fin-key": {Value: []byte(benchSecret), Version: 1}})
				}
				if _, err := RedactValue(r, res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
