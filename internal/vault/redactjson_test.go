package vault

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const jsonSecret = "canary-3f9a7c1e5b0d42"

// Redacting a JSON document works on its decoded values: escapes, object
// keys, blobs, _meta and structuredContent, and a value split across the
// texts of adjacent items. The output is JSON, its blobs still base64, and
// nothing of it shows the value once decoded.
func TestRedactJSON(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	blob := b64([]byte("\x00bin " + jsonSecret + " \xff"))
	nested := b64([]byte("hex " + hex.EncodeToString([]byte(jsonSecret))))
	for _, c := range []struct{ name, doc, enc string }{
		{"escaped", `{"content":[{"type":"text","text":"\u0063\u0061nary-3f9a7c1e5b0d42"}]}`, "raw"},
		{"key", `{"structuredContent":{"` + jsonSecret + `":1}}`, "raw"},
		{"meta", `{"_meta":{"k":"` + hex.EncodeToString([]byte(jsonSecret)) + `"}}`, "hex"},
		{"blob", `{"content":[{"type":"resource","resource":{"uri":"f:///b","blob":"` + blob + `"}}]}`, "blob"},
		{"blob-nested", `{"contents":[{"uri":"f:///b","blob":"` + nested + `"}]}`, "blob"},
		{"image", `{"content":[{"type":"image","mimeType":"image/png","data":"` + blob + `"}]}`, "blob"},
		{"split", `{"content":[{"type":"text","text":"key canary-3f"},{"type":"text","text":"9a7c1e5b0d42 end"}]}`, "split"},
		{"split-three", `{"content":[{"type":"text","text":"canary"},{"type":"image","data":"AAAA"},{"type":"text","text":"-3f9a7c"},{"type":"text","text":"1e5b0d42"}]}`, "split"},
		{"split-base64", `{"content":[{"type":"text","text":"` + b64([]byte("k=" + jsonSecret))[:14] + `"},{"type":"text","text":"` + b64([]byte("k=" + jsonSecret))[14:] + `"}]}`, "split"},
		{"split-resource", `{"contents":[{"uri":"a","text":"canary-3f9"},{"uri":"b","text":"a7c1e5b0d42"}]}`, "split"},
		{"split-prompt", `{"messages":[{"role":"user","content":{"type":"text","text":"canary-3"}},{"role":"user","content":{"type":"text","text":"f9a7c1e5b0d42"}}]}`, "split"},
	} {
		k := Known{"fin-key": {Value: []byte(jsonSecret), Version: 2}}
		f := Found{}
		out, err := k.Matcher().RedactJSON([]byte(c.doc), f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%s: not JSON: %s", c.name, out)
		}
		if l := leaksJSON(v); len(l) > 0 || !strings.Contains(string(out), "REDACTED secret:fin-key") && !strings.Contains(c.name, "blob") && c.name != "image" {
			t.Errorf("%s: %s shows the value (%v)", c.name, out, l)
		}
		if red := k.Redactions(f); len(red) != 1 || red[0].Secret != "fin-key" || red[0].Version != 2 || !slices.Contains(red[0].Encodings, c.enc) {
			t.Errorf("%s: recorded %+v", c.name, red)
		}
	}
}

// A credential shape is redacted from a member that blobs are decoded
// from, whether or not a secret was injected.
func TestRedactJSONShapeInData(t *testing.T) {
	doc := []byte(`{"structuredContent":{"data":"AKIAABCDEFGHIJKLMNOP"}}`)
	for _, k := range []Known{nil, {"k": {Value: []byte(jsonSecret)}}} {
		out, err := k.Matcher().RedactJSON(doc, nil)
		if err != nil || LooksLikeCredential(string(out)) {
			t.Errorf("%d secrets: %s (%v)", len(k), out, err)
		}
	}
}

// leaksJSON decodes every string of a JSON tree (and every blob, and the
// texts of an array joined) and returns the encodings showing jsonSecret.
func leaksJSON(v any) []string {
	var got []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			got = append(got, leaks(v, jsonSecret)...)
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				got = append(got, leaks(string(b), jsonSecret)...)
			}
		case []any:
			var joined strings.Builder
			for _, x := range v {
				if _, s, ok := textOf(x); ok {
					joined.WriteString(s)
				}
				walk(x)
			}
			got = append(got, leaks(joined.String(), jsonSecret)...)
		case map[string]any:
			for k, x := range v {
				got = append(got, leaks(k, jsonSecret)...)
				walk(x)
			}
		}
	}
	walk(v)
	return got
}

// A document without the value comes back as the same bytes, whatever
// its escapes and members; one that is not JSON, and holds something to
// redact, is an error.
func TestRedactJSONUnchanged(t *testing.T) {
	m := Known{"k": {Value: []byte(jsonSecret)}}.Matcher()
	for _, doc := range []string{
		`{"content":[{"type":"text","text":"a\nb \u00e9 \"q\""},{"type":"text","text":"second"}],"structuredContent":{"n":1.50,"big":12345678901234567890}}`,
		`{"contents":[{"uri":"f:///b","blob":"AAECAw=="}]}`,
	} {
		out, err := m.RedactJSON([]byte(doc), nil)
		if err != nil || string(out) != doc {
			t.Errorf("%s became %s (%v)", doc, out, err)
		}
	}
	if _, err := m.RedactJSON([]byte(`{"a":"`+jsonSecret+`"} {"b":2}`), nil); err == nil {
		t.Error("two documents accepted as one")
	}
}

// The cheap pre-test never says "nothing to find" of a document the full
// redaction changes.
func FuzzRedactJSONPretest(f *testing.F) {
	f.Add(`{"content":[{"type":"text","text":"canary-3f"},{"type":"text","text":"9a7c1e5b0d42"}]}`)
	f.Add(`{"a":"\u0063anary-3f9a7c1e5b0d42"}`)
	f.Add(`{"blob":"` + base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString([]byte(jsonSecret)))) + `"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		m := Known{"k": {Value: []byte(jsonSecret)}}.Matcher()
		if !json.Valid([]byte(doc)) || m.mayFind([]byte(doc)) {
			return
		}
		var v any
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		w := walker{m: m}
		w.value(v)
		if w.changed {
			t.Errorf("the pre-test passes %s, which redaction changes", doc)
		}
	})
}
