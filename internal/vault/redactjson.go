package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"sort"
)

// RedactJSON is Redact for a JSON document, done on its decoded values, so
// that no escaping hides a value: every string and object key is redacted
// as a text (with credential shapes); a "blob" or "data" member holding
// base64 (an embedded resource's bytes, an image) is decoded, redacted
// inside and encoded again; and the texts of an array's items (content,
// resource contents, prompt messages) are also redacted as one, so that a
// value cut across adjacent items is found. What m found is noted in f.
// It returns b itself if nothing changed, and an error if b is not one
// JSON value (not checked when the cheap pre-test finds nothing to do:
// callers with bytes that may not be JSON check json.Valid first).
func (m *Matcher) RedactJSON(b []byte, f Found) ([]byte, error) {
	if m.Empty() && !mayHoldCredentialBytes(b) || !m.Empty() && !m.mayFind(b) {
		return b, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("vault: more than one JSON value")
	}
	w := walker{m: m, f: f}
	v = w.value(v)
	if !w.changed {
		return b, nil
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// mayFind reports whether redacting the JSON document b could change it,
// cheaply and never wrongly "no": it has no credential shape, nothing is
// found in it with its JSON escapes decoded (each of its strings, decoded,
// is a part of that), it has no member a blob is decoded from, and at most
// one "text" member (so nothing can be split across texts). Most results
// pass this without being decoded.
func (m *Matcher) mayFind(b []byte) bool {
	if mayHoldCredentialBytes(b) {
		return true
	}
	dec := b
	if v := escapeView(b, false); v != nil {
		dec = v.dec
	}
	return len(m.find(dec, 0, nil)) > 0 || bytes.Contains(dec, []byte(`"blob"`)) || bytes.Contains(dec, []byte(`"data"`)) ||
		members(dec, `"text"`) > 1
}

// members counts the occurrences of key followed by a colon in b.
func members(b []byte, key string) int {
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(key))
		if i < 0 {
			return n
		}
		off += i + len(key)
		j := off
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j < len(b) && b[j] == ':' {
			n++
		}
	}
}

// walker redacts a decoded JSON tree in place.
type walker struct {
	m       *Matcher
	f       Found
	changed bool
}

func (w *walker) value(v any) any {
	switch v := v.(type) {
	case string:
		return w.text(v)
	case []any:
		for i, x := range v {
			v[i] = w.value(x)
		}
		w.split(v)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			x := v[k]
			if s, ok := x.(string); ok && (k == "blob" || k == "data") {
				x = w.blob(s)
			} else {
				x = w.value(x)
			}
			nk := w.text(k)
			if nk != k {
				delete(v, k)
				for _, taken := v[nk]; taken; _, taken = v[nk] {
					nk += "'" // two keys redacted alike: both kept
				}
			}
			v[nk] = x
		}
	}
	return v
}

// text redacts one string.
func (w *walker) text(s string) string {
	red := redactShapes(w.m.Text([]byte(s), w.f))
	if string(red) == s {
		return s
	}
	w.changed = true
	return string(red)
}

// blob redacts a base64 member inside its decoded bytes. If the encoded
// form still shows a value (its characters spelling one out) or a
// credential shape, the blob is replaced by the marker's bytes: it stays
// base64, which its readers need.
// A member that is not standard base64 is redacted as a text.
func (w *walker) blob(s string) string {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || w.m.Empty() {
		return w.text(s)
	}
	red := replace(raw, w.m.find(raw, 0, nil), w.f, EncBlob)
	out := s
	if !bytes.Equal(red, raw) {
		out = base64.StdEncoding.EncodeToString(red)
	}
	if spans := w.m.find([]byte(out), 0, nil); len(spans) > 0 {
		note(w.f, spans[0].name, spans[0].enc|EncBlob)
		out = base64.StdEncoding.EncodeToString([]byte(marker(spans[0].name)))
	} else if mayHoldCredential(out) && LooksLikeCredential(out) { // an access key id is valid base64
		out = base64.StdEncoding.EncodeToString([]byte("[REDACTED credential]"))
	}
	if out != s {
		w.changed = true
	}
	return out
}

// split redacts a value cut across the texts of a's items: the texts are
// searched as one, and each piece of a value found across items is
// removed, the first replaced by the marker.
func (w *walker) split(a []any) {
	if w.m.Empty() {
		return
	}
	type piece struct {
		in         map[string]any
		start, end int
	}
	var pieces []piece
	var joined []byte
	for _, x := range a {
		if in, s, ok := textOf(x); ok {
			pieces = append(pieces, piece{in, len(joined), len(joined) + len(s)})
			joined = append(joined, s...)
		}
	}
	if len(pieces) < 2 {
		return
	}
	var across []span
	for _, sp := range w.m.find(joined, 0, nil) {
		for _, p := range pieces {
			if sp.start < p.end && p.end < sp.end { // it ends past this item
				across = append(across, sp)
				break
			}
		}
	}
	if len(across) == 0 {
		return
	}
	across = merge(across, w.f, EncSplit)
	for _, p := range pieces {
		out := make([]byte, 0, p.end-p.start)
		for i := p.start; i < p.end; i++ {
			if sp, in := spanAt(across, i); !in {
				out = append(out, joined[i])
			} else if i == sp.start {
				out = append(out, marker(sp.name)...)
			}
		}
		p.in["text"] = string(out)
	}
	w.changed = true
}

// spanAt returns the span holding byte i, if any.
func spanAt(spans []span, i int) (span, bool) {
	for _, sp := range spans {
		if sp.start <= i && i < sp.end {
			return sp, true
		}
	}
	return span{}, false
}

// textOf returns the object holding x's text (a content item's "text", an
// embedded resource's or a prompt message's), and the text.
func textOf(x any) (map[string]any, string, bool) {
	obj, ok := x.(map[string]any)
	if !ok {
		return nil, "", false
	}
	if s, ok := obj["text"].(string); ok {
		return obj, s, true
	}
	for _, k := range []string{"resource", "content"} {
		if in, ok := obj[k].(map[string]any); ok {
			if s, ok := in["text"].(string); ok {
				return in, s, true
			}
		}
	}
	return nil, "", false
}
