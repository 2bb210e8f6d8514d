package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
)

// Injected is a secret value injected into an upstream request, with the
// version it was read at (for the record of a redaction, never the value).
type Injected struct {
	Value   []byte
	Version int
}

// Known is the set of secret values injected for one call, by name: none of
// them may leave Ostiary, in any encoding.
type Known map[string]Injected

// Minimum lengths. A value shorter than minRaw is not redacted at all (it
// would redact ordinary text); one shorter than MinEncoded is redacted as
// it is and behind escapes (percent, JSON), but not in base64 or hex, whose
// needles would be too short to be told from ordinary text: at 8 bytes the
// shortest base64 core is 8 characters.
const (
	minRaw     = 4
	MinEncoded = 8
	maxDepth   = 2 // escapes within escapes: percent inside JSON and back
)

// Encoding is a set of the forms in which a secret was found.
type Encoding uint8

// The encodings a redaction records.
const (
	EncRaw Encoding = 1 << iota
	EncJSONEscape
	EncBase64
	EncHex
	EncURL
	EncBlob
	EncSplit
)

var encodingNames = [...]string{"raw", "json-escape", "base64", "hex", "url", "blob", "split"}

// Names lists e's encodings by their stable names.
func (e Encoding) Names() []string {
	var out []string
	for i, n := range encodingNames {
		if e&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Found collects what redactions removed: by secret name, the encodings.
type Found map[string]Encoding

// Redaction is what one call had redacted of one secret, for its audit
// record: the name, the version and the encodings, never the value.
type Redaction struct {
	Secret    string
	Version   int
	Encodings []string
}

// Redactions lists what f found of k's secrets, by name.
func (k Known) Redactions(f Found) []Redaction {
	out := make([]Redaction, 0, len(f))
	for name, enc := range f {
		out = append(out, Redaction{Secret: name, Version: k[name].Version, Encodings: enc.Names()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Secret < out[j].Secret })
	return out
}

// needle is one secret's searchable forms.
type needle struct {
	name  string
	value []byte
	hex   []byte   // lower-case hex; nil below MinEncoded
	b64   [][]byte // base64 cores, both alphabets; nil below MinEncoded
}

// Matcher finds a Known set's values, in every covered encoding, in text.
// Build it once per set (Known.Matcher) and use it for every text of a
// call: the needles are computed once.
type Matcher struct {
	needles  []needle
	hex      bool // some needle has encoded forms
	shortest int  // the length of the shortest form of any needle
	space    bool // some value holds a space ('+' in a query string)
}

// Matcher compiles k. Longer values come first, so that a span is named
// after the longest secret it holds.
func (k Known) Matcher() *Matcher {
	m := &Matcher{}
	for name, inj := range k {
		v := inj.Value
		if len(v) < minRaw {
			continue
		}
		n := needle{name: name, value: v}
		if len(v) >= MinEncoded {
			n.hex = []byte(hex.EncodeToString(v))
			n.b64 = cores(v)
			m.hex = true
		}
		m.space = m.space || bytes.IndexByte(v, ' ') >= 0
		m.needles = append(m.needles, n)
		for _, form := range append(n.b64, v) {
			if m.shortest == 0 || len(form) < m.shortest {
				m.shortest = len(form)
			}
		}
	}
	sort.Slice(m.needles, func(i, j int) bool {
		a, b := m.needles[i], m.needles[j]
		return len(a.value) > len(b.value) || len(a.value) == len(b.value) && a.name < b.name
	})
	return m
}

// Empty reports whether m has nothing to find.
func (m *Matcher) Empty() bool { return m == nil || len(m.needles) == 0 }

// cores returns, for each of the three alignments v can have inside a
// longer byte string, the base64 of v's whole 3-byte groups at that
// alignment: a substring of the base64 of any string holding v there,
// whatever surrounds it and whether padded or not. Both alphabets.
func cores(v []byte) [][]byte {
	var out [][]byte
	for a := range 3 {
		skip := (3 - a) % 3 // v's bytes that share a group with what precedes it
		whole := (len(v) - skip) / 3 * 3
		std := base64.StdEncoding.EncodeToString(v[skip : skip+whole])
		out = append(out, []byte(std))
		if url := urlAlphabet.Replace(std); url != std {
			out = append(out, []byte(url))
		}
	}
	return out
}

var urlAlphabet = strings.NewReplacer("+", "-", "/", "_")

// span is a found secret: s[start:end], and how it was encoded.
type span struct {
	start, end int
	name       string
	enc        Encoding
}

// find appends to out every span of s holding a needle: as it is, in hex
// (any case), inside a base64 run, and (below maxDepth) behind percent or
// JSON escapes, decoded.
func (m *Matcher) find(s []byte, depth int, out []span) []span {
	if len(s) < m.shortest {
		return out
	}
	var runs []hexRun
	if m.hex {
		runs = hexRuns(s, 2*MinEncoded)
	}
	for i := range m.needles {
		n := &m.needles[i]
		out = indexAll(s, n.value, n.name, EncRaw, out, nil)
		for _, r := range runs {
			for _, sp := range indexAll(r.lower, n.hex, n.name, EncHex, nil, nil) {
				out = append(out, span{r.start + sp.start, r.start + sp.end, sp.name, sp.enc})
			}
		}
		for _, core := range n.b64 {
			out = indexAll(s, core, n.name, EncBase64, out, b64Run)
		}
	}
	if depth >= maxDepth {
		return out
	}
	if bytes.IndexByte(s, '%') >= 0 {
		out = m.within(s, func(mapped bool) *view { return percentView(s, false, mapped) }, depth, EncURL, out)
	}
	if m.space && bytes.IndexByte(s, '+') >= 0 {
		out = m.within(s, func(mapped bool) *view { return percentView(s, true, mapped) }, depth, EncURL, out)
	}
	if bytes.IndexByte(s, '\\') >= 0 {
		out = m.within(s, func(mapped bool) *view { return escapeView(s, mapped) }, depth, EncJSONEscape, out)
	}
	return out
}

// indexAll appends a span for each occurrence of n in s, widened by grow
// if given.
func indexAll(s, n []byte, name string, enc Encoding, out []span, grow func(s []byte, i, j int) (int, int)) []span {
	if len(n) == 0 {
		return out
	}
	for off := 0; off < len(s); {
		i := bytes.Index(s[off:], n)
		if i < 0 {
			break
		}
		start, end := off+i, off+i+len(n)
		if grow != nil {
			start, end = grow(s, start, end)
		}
		out = append(out, span{start, end, name, enc})
		off = end
	}
	return out
}

// b64Run widens s[i:j] to the whole run of base64 characters (either
// alphabet, with its padding) around it: what is left of a base64 token
// around a core still encodes bytes of the secret.
func b64Run(s []byte, i, j int) (int, int) {
	for i > 0 && isB64(s[i-1]) {
		i--
	}
	for j < len(s) && isB64(s[j]) {
		j++
	}
	for j < len(s) && s[j] == '=' {
		j++
	}
	return i, j
}

func isB64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}

// hexRun is a run of hex digits in a text, lower-cased.
type hexRun struct {
	start int
	lower []byte
}

// hexRuns returns the runs of hex digits of s at least min long (a hex
// needle is found in one, whatever its case), lower-cased.
func hexRuns(s []byte, min int) []hexRun {
	var out []hexRun
	for i := 0; i < len(s); {
		if !isHex(s[i]) {
			i++
			continue
		}
		j, upper := i, false
		for ; j < len(s) && isHex(s[j]); j++ {
			upper = upper || s[j] <= 'F' && s[j] >= 'A'
		}
		if j-i >= min {
			run := s[i:j]
			if upper {
				run = bytes.ToLower(run)
			}
			out = append(out, hexRun{i, run})
		}
		i = j
	}
	return out
}

// view is a decoded form of a text: dec[i] came from src[from[i]:to[i]].
type view struct {
	dec      []byte
	from, to []int
}

// within finds needles in s decoded by decode (if it decodes anything)
// and appends their spans in s, marked as found behind enc. The decoding
// is mapped back to s only when something was found.
func (m *Matcher) within(s []byte, decode func(mapped bool) *view, depth int, enc Encoding, out []span) []span {
	v := decode(false)
	if v == nil || len(m.find(v.dec, depth+1, nil)) == 0 {
		return out
	}
	v = decode(true)
	for _, sp := range m.find(v.dec, depth+1, nil) {
		out = append(out, span{v.from[sp.start], v.to[sp.end-1], sp.name, sp.enc&^EncRaw | enc})
	}
	return out
}

// replace returns s with each span (merged where they overlap) replaced by
// its marker, noting in f what was found (with extra); s itself if there
// are none.
func replace(s []byte, spans []span, f Found, extra Encoding) []byte {
	if len(spans) == 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	last := 0
	for _, sp := range merge(spans, f, extra) {
		out = append(append(out, s[last:sp.start]...), marker(sp.name)...)
		last = sp.end
	}
	return append(out, s[last:]...)
}

// merge sorts spans and merges those that overlap (each is named after
// its first), noting every one in f with extra.
func merge(spans []span, f Found, extra Encoding) []span {
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	out := spans[:0:0]
	for _, sp := range spans {
		note(f, sp.name, sp.enc|extra)
		if n := len(out); n > 0 && sp.start < out[n-1].end {
			out[n-1].end = max(out[n-1].end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

func note(f Found, name string, enc Encoding) {
	if f != nil {
		f[name] |= enc
	}
}

func marker(name string) string { return "[REDACTED secret:" + name + "]" }

// Text returns s with every known value replaced by its marker, in each
// covered encoding, noting what it found in f (if not nil); s itself if
// there was nothing.
func (m *Matcher) Text(s []byte, f Found) []byte {
	if m.Empty() {
		return s
	}
	return replace(s, m.find(s, 0, nil), f, 0)
}
