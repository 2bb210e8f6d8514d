package vault

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchDoc is a typical tool result of about 3 KiB: rows as JSON text and
// as structured content; echo appends the secret to the text.
func benchDoc(echo bool) []byte {
	var text strings.Builder
	var rows []any
	for text.Len() < 1200 {
		text.WriteString(`{"id":"cus_0012345","name":"Ada Lovelace","email":"ada@example.com","balance":1234.56},` + "\n")
		rows = append(rows, map[string]any{"id": "cus_0012345", "name": "Ada Lovelace", "email": "ada@example.com", "balance": 1234.56})
	}
	if echo {
		text.WriteString("key canary-3f9a7c1e5b0d42")
	}
	b, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": text.String()}}, "structuredContent": map[string]any{"rows": rows}})
	return b
}

// BenchmarkRedact measures redacting a typical result with no secret
// injected, one injected and not echoed, and one echoed (the matcher
// compiled each time, as for each call).
func BenchmarkRedact(b *testing.B) {
	for _, c := range []struct {
		name        string
		known, echo bool
	}{{"none-injected", false, false}, {"injected-clean", true, false}, {"injected-echoed", true, true}} {
		doc := benchDoc(c.echo)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				k := Known{}
				if c.known {
					k["fin-key"] = Injected{Value: []byte("canary-3f9a7c1e5b0d42"), Version: 1}
				}
				if _, err := k.Matcher().RedactJSON(doc, Found{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
