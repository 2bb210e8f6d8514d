// Package edge holds the checks every request to /mcp and /api/v1 passes
// before any handler reads it, authentication included. Each refuses an
// ambiguity that two readers of the same request could resolve two ways:
// a repeated header that one reader takes first and another last, a body
// framed both by Content-Length and Transfer-Encoding, a body declared in
// a character set other than the UTF-8 every parser here assumes.
// Ambiguity is refused, never resolved.
package edge

import (
	"mime"
	"net/http"
	"net/textproto"
	"sort"
	"strings"

	"github.com/ostiary/ostiary/internal/audit"
)

// EventRequestRefused is the audit event of a request refused at the edge.
const EventRequestRefused = "request-refused"

// EventRateLimited records a request refused by a rate limit, at /mcp or
// /api/v1.
const EventRateLimited = "rate-limited"

// Reason codes.
const (
	ReasonRepeatedHeader = "header-repeated"
	ReasonFraming        = "body-framing-ambiguous"
	ReasonCharset        = "charset-unsupported"
)

// singular are the headers that must appear at most once: each decides who
// the caller is, which session or protocol a request belongs to, which
// tool it names, or where it comes from. Mcp-Param-* headers are singular
// too (checked by prefix).
var singular = []string{
	"Authorization", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name",
	"Origin", "Content-Type", "X-Request-Id", "Traceparent", "Last-Event-Id", "Sec-Fetch-Site",
}

// Refusal is why a request was refused, safe to show the client.
type Refusal struct {
	Status  int
	Reason  string
	Message string
	Header  string // the header concerned, canonical form
}

// Check returns the refusal of r, or nil if it is unambiguous.
func Check(r *http.Request) *Refusal {
	for _, h := range singular {
		if len(r.Header[h]) > 1 {
			return repeated(h)
		}
	}
	var params []string
	for h, vs := range r.Header {
		if len(vs) > 1 && strings.HasPrefix(h, "Mcp-Param-") {
			params = append(params, h)
		}
	}
	if len(params) > 0 {
		sort.Strings(params)
		return repeated(params[0])
	}
	// Go's server drops Content-Length when Transfer-Encoding is present,
	// so the two cannot be told apart from a chunked body alone: every body
	// here must be framed by Content-Length (HTTP/2 frames its own).
	if len(r.TransferEncoding) > 0 {
		return &Refusal{Status: http.StatusBadRequest, Reason: ReasonFraming, Header: "Transfer-Encoding",
			Message: "a request body must be framed by Content-Length alone: Transfer-Encoding is refused (with or without Content-Length)"}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		_, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return &Refusal{Status: http.StatusUnsupportedMediaType, Reason: ReasonCharset, Header: "Content-Type",
				Message: "the Content-Type header is malformed"}
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return &Refusal{Status: http.StatusUnsupportedMediaType, Reason: ReasonCharset, Header: "Content-Type",
				Message: "the body must be UTF-8: charset " + clip(cs) + " is not supported"}
		}
	}
	return nil
}

func repeated(h string) *Refusal {
	return &Refusal{Status: http.StatusBadRequest, Reason: ReasonRepeatedHeader, Header: textproto.CanonicalMIMEHeaderKey(h),
		Message: "the " + h + " header appears more than once: send it once"}
}

// Record is the audit record of the refusal (no header values: a repeated
// Authorization header holds credentials).
func (f *Refusal) Record(r *http.Request, requestID string) audit.Record {
	path := r.URL.Path
	if len(path) > 200 {
		path = path[:200]
	}
	return audit.Record{Event: EventRequestRefused, Outcome: audit.Denied, Reason: f.Reason, RequestID: requestID, Remote: r.RemoteAddr,
		Detail: map[string]any{"method": clip(r.Method), "path": strings.ToValidUTF8(path, "?"), "header": f.Header}}
}

func clip(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?")
}
