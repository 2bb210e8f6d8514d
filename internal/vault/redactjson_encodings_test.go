package vault

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// A value carried in a JSON result's text, in any encoding an upstream
// can give it (raw, JSON-escaped, base64, hex, URL-encoded, and those
// nested), is redacted on the decoded text and the redaction names the
// encoding; a document that is not JSON is refused with an error that
// shows nothing of it.
func TestRedactJSONEveryEncoding(t *testing.T) {
	for _, secret := range []string{jsonSecret, `p@ss "wörd" 1234/+?`} {
		k := Known{"k": {Value: []byte(secret), Version: 4}}
		m := k.Matcher()
		for _, e := range encoders {
			text, _ := json.Marshal("got " + e.fn([]byte("x"+secret+"!")) + " ok")
			doc := `{"content":[{"type":"text","text":` + string(text) + `}],"isError":false}`
			f := Found{}
			out, err := m.RedactJSON([]byte(doc), f)
			if err != nil {
				t.Fatalf("%s: %v", e.name, err)
			}
			var v struct {
				Content []struct{ Text string } `json:"content"`
			}
			if err := json.Unmarshal(out, &v); err != nil || len(v.Content) != 1 {
				t.Fatalf("%s: not the document: %s", e.name, out)
			}
			if l := leaks(v.Content[0].Text, secret); len(l) > 0 || !strings.Contains(v.Content[0].Text, "[REDACTED secret:k]") {
				t.Errorf("%q as %s: %q (shows %v)", secret, e.name, v.Content[0].Text, l)
			}
			want := e.enc
			if strings.Contains(e.fn([]byte("x"+secret+"!")), secret) {
				want = "raw"
			}
			if red := k.Redactions(f); len(red) != 1 || red[0].Version != 4 || !slices.Contains(red[0].Encodings, want) {
				t.Errorf("%q as %s: recorded %+v", secret, e.name, red)
			}
		}
		for _, bad := range []string{`{"text":"` + secret + `"`, `{"text":"` + secret + `"} {}`, `["` + secret + `",]`} {
			if _, err := m.RedactJSON([]byte(bad), nil); err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:6]) {
				t.Errorf("%s: %v", bad, err)
			}
		}
	}
}
