package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// ParsePayload reads a record back from the bytes the log holds: its
// canonical encoding. Hash is SHA-256 of b itself, so what is verified is
// exactly what was written. Only the canonical encoding of a record of the
// current format is a record: its members in their order, each string and
// the detail in canonical form, seq a positive integer, time as
// FormatTime writes it. Anything else (reordered, spaced, escaped
// differently, a member more or less) is refused: two byte strings are
// never the same record. It reads the fixed members directly (about a
// tenth of a generic parse and re-encoding); only the detail goes through
// the JSON parser.
func ParsePayload(b []byte) (*Record, error) {
	p := payloadParser{b: b}
	var r Record
	var ts, outcome, prev string
	p.lit(`{"actor":`)
	r.Actor = p.str()
	p.lit(`,"detail":`)
	r.Detail = p.detail()
	p.lit(`,"event":`)
	r.Event = p.str()
	p.lit(`,"key_id":`)
	r.KeyID = p.str()
	p.lit(`,"outcome":`)
	outcome = p.str()
	p.lit(`,"prev":`)
	prev = p.str()
	p.lit(`,"reason":`)
	r.Reason = p.str()
	p.lit(`,"remote":`)
	r.Remote = p.str()
	p.lit(`,"request_id":`)
	r.RequestID = p.str()
	p.lit(`,"seq":`)
	r.Seq = p.uint()
	p.lit(`,"target":`)
	r.Target = p.str()
	p.lit(`,"time":`)
	ts = p.str()
	p.lit(`,"v":` + strconv.Itoa(FormatVersion) + `}`)
	if p.err == nil && p.i != len(b) {
		p.fail("data after the record")
	}
	if p.err != nil {
		return nil, p.err
	}
	if r.Seq == 0 {
		return nil, fmt.Errorf("audit: record seq 0 is not a positive integer")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || FormatTime(t) != ts {
		return nil, fmt.Errorf("audit: record %d: time %q is not in canonical form", r.Seq, ts)
	}
	r.Time, r.Outcome = t.UTC(), Outcome(outcome)
	h, err := hex.DecodeString(prev)
	if err != nil || len(h) != len(r.Prev) || hex.EncodeToString(h) != prev {
		return nil, fmt.Errorf("audit: record %d: prev is not a SHA-256 hash in lower-case hex", r.Seq)
	}
	copy(r.Prev[:], h)
	r.Hash = sha256.Sum256(b)
	return &r, nil
}

// payloadParser reads a canonical record; the first problem sticks.
type payloadParser struct {
	b   []byte
	i   int
	err error
}

func (p *payloadParser) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("audit: record is not in canonical form at byte %d: %s", p.i, what)
	}
}

func (p *payloadParser) lit(s string) {
	if p.err != nil {
		return
	}
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.fail("want " + strconv.Quote(s))
		return
	}
	p.i += len(s)
}

// str reads a string in canonical form: unescaped where it may be, the
// escapes jcs.AppendString writes where it must.
func (p *payloadParser) str() string {
	if p.err != nil {
		return ""
	}
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		p.fail("want a string")
		return ""
	}
	start, escaped := p.i, false
	j := p.i + 1
	for ; j < len(p.b) && p.b[j] != '"'; j++ {
		if p.b[j] == '\\' {
			escaped = true
			j++
		}
	}
	if j >= len(p.b) {
		p.fail("unterminated string")
		return ""
	}
	raw := p.b[start : j+1]
	p.i = j + 1
	var s string
	if !escaped {
		s = string(raw[1 : len(raw)-1])
		for k := 0; k < len(s); k++ {
			if s[k] < 0x20 {
				p.fail("unescaped control character")
				return ""
			}
		}
		if !utf8.ValidString(s) {
			p.fail("invalid UTF-8")
			return ""
		}
		return s
	}
	v, err := strictjson.Parse(raw)
	if s, _ = v.(string); err != nil || s == "" && len(raw) != 2 {
		p.fail("malformed string")
		return ""
	}
	if c, err := jcs.AppendString(nil, s); err != nil || !bytes.Equal(c, raw) {
		p.fail("string not in canonical form")
		return ""
	}
	return s
}

func (p *payloadParser) uint() uint64 {
	if p.err != nil {
		return 0
	}
	j := p.i
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	digits := string(p.b[p.i:j])
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != digits {
		p.fail("want a canonical unsigned integer")
		return 0
	}
	p.i = j
	return n
}

// detail reads the detail object, which must be in canonical form.
func (p *payloadParser) detail() map[string]any {
	if p.err != nil {
		return nil
	}
	end, ok := objectEnd(p.b, p.i)
	if !ok {
		p.fail("want an object")
		return nil
	}
	raw := p.b[p.i:end]
	v, err := strictjson.Parse(raw)
	m, isMap := v.(map[string]any)
	if err != nil || !isMap {
		p.fail("detail is not an object")
		return nil
	}
	if c, err := jcs.Append(nil, m); err != nil || !bytes.Equal(c, raw) {
		p.fail("detail not in canonical form")
		return nil
	}
	p.i = end
	return m
}

// objectEnd returns the offset just past the JSON object starting at i
// (strings skipped, braces and brackets counted), if it ends.
func objectEnd(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}
